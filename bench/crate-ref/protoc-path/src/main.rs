//! Prints the path of the `protoc` binary `protoc-bin-vendored` ships, for PROTOC.
fn main() {
    match protoc_bin_vendored::protoc_bin_path() {
        Ok(path) => println!("{}", path.display()),
        Err(err) => {
            eprintln!("protoc-bin-vendored has no protoc for this platform: {err}");
            std::process::exit(1);
        }
    }
}
