//! Encryption at rest (docs/FORMAT.md, "Encrypted objects"): a whole sealed segment as one age
//! v1 file (binary, not armored) to X25519 recipients or a scrypt passphrase. No key, identity
//! or passphrase ever reaches an error message.

use std::io::{Read, Write};
use std::str::FromStr;

use age::secrecy::SecretString;
use age::{x25519, Decryptor, Encryptor, Identity, Recipient};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorCode, Result};

/// What every age v1 file starts with (a sealed segment starts with `HADBJ`).
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

pub fn is_encrypted(bytes: &[u8]) -> bool {
    bytes.starts_with(AGE_MAGIC)
}

/// Who may read an object: X25519 recipients (`age1...`), or one passphrase alone.
pub struct Recipients<'a> {
    pub recipients: &'a [String],
    pub passphrase: Option<&'a str>,
}

/// What a reader may open objects with: X25519 identities (`AGE-SECRET-KEY-1...`) and/or a
/// passphrase.
pub struct Identities<'a> {
    pub identities: &'a [String],
    pub passphrase: Option<&'a str>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::InvalidArgument, message)
}

fn failed(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::DecryptionFailed, message)
}

pub fn encrypt(plaintext: &[u8], to: &Recipients) -> Result<Vec<u8>> {
    encrypt_to(
        plaintext,
        to,
        Vec::with_capacity(ciphertext_capacity(plaintext.len())),
    )
}

/// The age file of `plaintext` and its SHA-256, hashed as it is written (while each chunk is
/// still in cache) rather than in a second pass over the ciphertext.
pub fn encrypt_hashed(plaintext: &[u8], to: &Recipients) -> Result<(Vec<u8>, [u8; 32])> {
    let hashing = Hashing {
        out: Vec::with_capacity(ciphertext_capacity(plaintext.len())),
        hasher: Sha256::new(),
    };
    let hashing = encrypt_to(plaintext, to, hashing)?;
    Ok((hashing.out, hashing.hasher.finalize().into()))
}

/// The age overhead: a header of a few hundred bytes per recipient and 16 bytes per 64 KiB.
fn ciphertext_capacity(plaintext: usize) -> usize {
    plaintext + plaintext / 4096 + 256 * 4
}

/// A writer that hashes what it passes on.
struct Hashing {
    out: Vec<u8>,
    hasher: Sha256,
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.extend_from_slice(buf);
        self.hasher.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn encrypt_to<W: Write>(plaintext: &[u8], to: &Recipients, out: W) -> Result<W> {
    let encryptor = match (to.passphrase, to.recipients.is_empty()) {
        (Some(_), false) => {
            return Err(invalid(
                "age: a passphrase cannot be combined with recipients",
            ))
        }
        (None, true) => return Err(invalid("age: no recipient and no passphrase to encrypt to")),
        (Some(passphrase), true) => {
            Encryptor::with_user_passphrase(SecretString::from(passphrase.to_owned()))
        }
        (None, false) => {
            let parsed = to
                .recipients
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    x25519::Recipient::from_str(text.trim()).map_err(|_| {
                        invalid(format!(
                            "age: recipient #{} is not an X25519 recipient (age1...)",
                            i + 1
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Encryptor::with_recipients(parsed.iter().map(|r| r as &dyn Recipient))
                .map_err(|err| invalid(format!("age: cannot encrypt to these recipients: {err}")))?
        }
    };
    let write = |out: W| -> std::io::Result<W> {
        let mut writer = encryptor.wrap_output(out)?;
        writer.write_all(plaintext)?;
        writer.finish()
    };
    write(out).map_err(|err| Error::new(ErrorCode::Internal, format!("age: encrypting: {err}")))
}

/// Decrypts an age file holding at most `max_plaintext` bytes. Memory: the output never grows
/// past `max_plaintext` + 1 bytes whatever the file declares, and never past the input's size.
pub fn decrypt(ciphertext: &[u8], with: &Identities, max_plaintext: usize) -> Result<Vec<u8>> {
    if !is_encrypted(ciphertext) {
        return Err(Error::new(
            ErrorCode::NotEncrypted,
            "not an age-encrypted object (no age-encryption.org/v1 header)",
        ));
    }
    let mut identities: Vec<Box<dyn Identity>> = Vec::new();
    for (i, text) in with.identities.iter().enumerate() {
        let identity = x25519::Identity::from_str(text.trim()).map_err(|_| {
            invalid(format!(
                "age: identity #{} is not an X25519 identity (AGE-SECRET-KEY-1...)",
                i + 1
            ))
        })?;
        identities.push(Box::new(identity));
    }
    if let Some(passphrase) = with.passphrase {
        identities.push(Box::new(age::scrypt::Identity::new(SecretString::from(
            passphrase.to_owned(),
        ))));
    }
    if identities.is_empty() {
        return Err(invalid(
            "age: no identity and no passphrase to decrypt with",
        ));
    }
    let decryptor = Decryptor::new(ciphertext)
        .map_err(|err| failed(format!("age: unreadable header: {err}")))?;
    let reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn Identity))
        .map_err(|err| failed(format!("age: {err}")))?;
    let mut out = Vec::with_capacity(ciphertext.len().min(max_plaintext));
    reader
        .take(max_plaintext as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|err| failed(format!("age: the payload is truncated or altered: {err}")))?;
    if out.len() > max_plaintext {
        return Err(Error::new(
            ErrorCode::TooLarge,
            format!("age: the decrypted object exceeds the ceiling of {max_plaintext} bytes"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // __test__/fixtures/age/test-key.txt (a test key)
    const IDENTITY: &str =
        "AGE-SECRET-KEY-1FJWL7KANJFH7N7L2EEMMDLEAHJ2KXVASCYGSXJLN6ZGXJSKPYA8SLAZ7V0";

    fn keys() -> (String, String) {
        let identity = x25519::Identity::from_str(IDENTITY).unwrap();
        (IDENTITY.to_string(), identity.to_public().to_string())
    }

    fn to(recipients: &[String]) -> Recipients<'_> {
        Recipients {
            recipients,
            passphrase: None,
        }
    }

    fn with(identities: &[String]) -> Identities<'_> {
        Identities {
            identities,
            passphrase: None,
        }
    }

    #[test]
    fn round_trips_and_refuses_more_than_the_ceiling() {
        let (identity, recipient) = keys();
        let plain = vec![7u8; 200_000];
        let sealed = encrypt(&plain, &to(&[recipient])).unwrap();
        assert!(is_encrypted(&sealed));
        let ids = [identity];
        assert_eq!(decrypt(&sealed, &with(&ids), plain.len()).unwrap(), plain);
        let err = decrypt(&sealed, &with(&ids), plain.len() - 1).unwrap_err();
        assert_eq!(err.code, ErrorCode::TooLarge);
    }

    #[test]
    fn encrypt_hashed_gives_the_sha256_of_what_it_wrote() {
        let (identity, recipient) = keys();
        let plain = vec![3u8; 150_000];
        let (sealed, digest) = encrypt_hashed(&plain, &to(&[recipient])).unwrap();
        assert_eq!(digest, crate::format::sha256(&sealed));
        assert_eq!(
            decrypt(&sealed, &with(&[identity]), plain.len()).unwrap(),
            plain
        );
    }

    #[test]
    fn damage_and_wrong_keys_are_decryption_failed_without_key_material() {
        let (identity, recipient) = keys();
        let sealed = encrypt(b"segment bytes", &to(&[recipient])).unwrap();
        let other = x25519::Identity::generate();
        let other_text = {
            use age::secrecy::ExposeSecret;
            other.to_string().expose_secret().to_string()
        };
        let err = decrypt(&sealed, &with(std::slice::from_ref(&other_text)), 1 << 20).unwrap_err();
        assert_eq!(err.code, ErrorCode::DecryptionFailed);
        assert!(!err.message.contains(&other_text));
        let ids = [identity];
        let cut = &sealed[..sealed.len() - 1];
        assert_eq!(
            decrypt(cut, &with(&ids), 1 << 20).unwrap_err().code,
            ErrorCode::DecryptionFailed
        );
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(
            decrypt(&flipped, &with(&ids), 1 << 20).unwrap_err().code,
            ErrorCode::DecryptionFailed
        );
        let err = decrypt(b"HADBJ....", &with(&ids), 1 << 20).unwrap_err();
        assert_eq!(err.code, ErrorCode::NotEncrypted);
    }

    #[test]
    fn passphrases_round_trip() {
        let to = Recipients {
            recipients: &[],
            passphrase: Some("correct horse"),
        };
        let sealed = encrypt(b"abc", &to).unwrap();
        let with = Identities {
            identities: &[],
            passphrase: Some("correct horse"),
        };
        assert_eq!(decrypt(&sealed, &with, 3).unwrap(), b"abc");
    }
}
