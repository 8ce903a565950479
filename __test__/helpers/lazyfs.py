"""A lazy file system over FUSE, after LazyFS: it simulates what a power loss leaves on disk.

    python3 lazyfs.py <backing-dir> <mountpoint>

Every operation passes through to <backing-dir>, which holds the current state as the running
programs see it. Beside it the file system keeps a model of the durable state: the content of
each file as of its last fsync/fdatasync, and the entries of each directory as of its last
fsync. Nothing else is durable: data written since a file's last sync, and every create,
rename, unlink, link, mkdir or rmdir in a directory not fsynced since (truncation is a data
change: it is durable once the file is synced). A file whose name became durable but whose data
never was comes back empty, as on a real disk that lost its page cache.

Control, one command a line on stdin, each answered by a line on stdout:
    crash   a power loss: the backing directory is rebuilt to the durable state, every open
            file handle becomes stale (EBADF), and the surviving state is served from then on
            (itself fully durable); answers `crashed`
EOF on stdin unmounts. `ready` is printed once the mount serves requests.

Needs libfuse 3 (Debian: fuse3, libfuse3-3) and mfusepy (PyPI).
"""

import errno
import functools
import os
import subprocess
import sys
import threading

import mfusepy as fuse

ROOT_ID = 1


class LazyFS(fuse.Operations):
    use_ns = True

    def __init__(self, backing):
        self.backing = os.path.realpath(backing)
        self.mutex = threading.Lock()
        self.handles = {}  # handle -> [fd or None (a directory), id]
        self.next_handle = 1
        self._reset()

    # the model

    def _reset(self):
        """Takes the backing directory as it is as the durable state (at mount and after a crash)."""
        self.next_id = ROOT_ID
        self.ids = {}  # current path -> id (hard links share one)
        self.is_dir = {}  # id -> bool
        self.durable_data = {}  # file id -> content as of its last sync
        self.durable_entries = {}  # directory id -> {name: id} as of its last fsync
        self._scan('/')

    def _scan(self, path):
        ident = self._new_id(path, os.path.isdir(self._real(path)))
        if not self.is_dir[ident]:
            with open(self._real(path), 'rb') as file:
                self.durable_data[ident] = file.read()
            return
        for name in os.listdir(self._real(path)):
            self._scan(join(path, name))
        self.durable_entries[ident] = self._entries(path)

    def _new_id(self, path, is_dir):
        ident = self.next_id
        self.next_id += 1
        self.ids[path] = ident
        self.is_dir[ident] = is_dir
        return ident

    def _entries(self, path):
        return {name: self.ids[join(path, name)] for name in os.listdir(self._real(path))}

    def _real(self, path):
        return self.backing + path

    def crash(self):
        for fd, _ in self.handles.values():
            if fd is not None:
                os.close(fd)
        self.handles.clear()
        for name in os.listdir(self.backing):
            remove_tree(os.path.join(self.backing, name))
        self._materialize(ROOT_ID, self.backing, {})
        self._reset()

    def _materialize(self, dir_id, real_dir, made):
        """Writes the durable content of directory `dir_id` into `real_dir`."""
        for name, ident in self.durable_entries.get(dir_id, {}).items():
            target = os.path.join(real_dir, name)
            if self.is_dir[ident]:
                os.mkdir(target)
                self._materialize(ident, target, made)
            elif ident in made:
                os.link(made[ident], target)
            else:
                with open(target, 'wb') as file:
                    file.write(self.durable_data.get(ident, b''))
                made[ident] = target

    def _handle(self, fh):
        if fh not in self.handles:
            raise fuse.FuseOSError(errno.EBADF)  # opened before a crash
        return self.handles[fh]

    def _add_handle(self, fd, ident):
        fh = self.next_handle
        self.next_handle += 1
        self.handles[fh] = [fd, ident]
        return fh

    def _move(self, old, new):
        for path in [p for p in self.ids if p == new or p.startswith(new + '/')]:
            del self.ids[path]
        for path in [p for p in self.ids if p == old or p.startswith(old + '/')]:
            self.ids[new + path[len(old):]] = self.ids.pop(path)

    def _forget(self, path):
        for known in [p for p in self.ids if p == path or p.startswith(path + '/')]:
            del self.ids[known]

    # namespace

    def getattr(self, path, fh=None):
        if fh is not None and fh in self.handles and self.handles[fh][0] is not None:
            st = os.fstat(self.handles[fh][0])
        else:
            st = os.lstat(self._real(path))
        attrs = {key: getattr(st, key) for key in ('st_mode', 'st_nlink', 'st_uid', 'st_gid', 'st_size')}
        return attrs | {key: getattr(st, key + '_ns') for key in ('st_atime', 'st_mtime', 'st_ctime')}

    def readdir(self, path, fh):
        return ['.', '..'] + os.listdir(self._real(path))

    def mkdir(self, path, mode):
        os.mkdir(self._real(path), mode)
        self._new_id(path, True)

    def rmdir(self, path):
        os.rmdir(self._real(path))
        self._forget(path)

    def unlink(self, path):
        os.unlink(self._real(path))
        del self.ids[path]

    def rename(self, old, new):
        os.rename(self._real(old), self._real(new))
        self._move(old, new)

    def link(self, target, source):
        os.link(self._real(source), self._real(target))
        self.ids[target] = self.ids[source]

    def chmod(self, path, mode):
        os.chmod(self._real(path), mode)

    def chown(self, path, uid, gid):
        os.chown(self._real(path), uid, gid)

    def utimens(self, path, times=None):
        os.utime(self._real(path), ns=times)

    def statfs(self, path):
        st = os.statvfs(self._real(path))
        return {key: getattr(st, key) for key in ('f_bavail', 'f_bfree', 'f_blocks', 'f_bsize', 'f_favail', 'f_ffree', 'f_files', 'f_flag', 'f_frsize', 'f_namemax')}

    # files

    def create(self, path, mode, flags):
        fd = os.open(self._real(path), read_write(flags) | os.O_CREAT, mode)
        return self._add_handle(fd, self._new_id(path, False))

    def open(self, path, flags):
        return self._add_handle(os.open(self._real(path), read_write(flags)), self.ids[path])

    def read(self, path, size, offset, fh):
        return os.pread(self._handle(fh)[0], size, offset)

    def write(self, path, data, offset, fh):
        return os.pwrite(self._handle(fh)[0], data, offset)

    def truncate(self, path, length, fh=None):
        if fh is None:
            os.truncate(self._real(path), length)
        else:
            os.ftruncate(self._handle(fh)[0], length)

    def fsync(self, path, datasync, fh):
        fd, ident = self._handle(fh)
        self.durable_data[ident] = read_all(fd)

    def flush(self, path, fh):
        self._handle(fh)

    def release(self, path, fh):
        entry = self.handles.pop(fh, None)
        if entry is not None:
            os.close(entry[0])

    # directories

    def opendir(self, path):
        return self._add_handle(None, self.ids[path])

    def releasedir(self, path, fh):
        self.handles.pop(fh, None)

    def fsyncdir(self, path, datasync, fh):
        _, ident = self._handle(fh)
        self.durable_entries[ident] = self._entries(path)

    def init_with_config(self, conn_info, config):
        # no kernel caching of names, attributes or pages: after a crash every lookup comes here
        config.entry_timeout = 0
        config.attr_timeout = 0
        config.negative_timeout = 0
        config.direct_io = 1
        config.hard_remove = 1
        print('ready', flush=True)


def serialized(method):
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with self.mutex:
            return method(self, *args, **kwargs)

    return run


# the file system operations and crash() run one at a time
for _name, _method in list(vars(LazyFS).items()):
    if callable(_method) and not _name.startswith('_') and _name != 'init_with_config':
        setattr(LazyFS, _name, serialized(_method))


def join(directory, name):
    return directory.rstrip('/') + '/' + name


def read_write(flags):
    # every backing file is opened read-write and written at the offsets the kernel gives, so
    # that fsync can read what it makes durable
    return (flags & ~(os.O_ACCMODE | os.O_APPEND | os.O_CREAT)) | os.O_RDWR


def read_all(fd):
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b''.join(chunks)


def remove_tree(path):
    if os.path.isdir(path) and not os.path.islink(path):
        for name in os.listdir(path):
            remove_tree(os.path.join(path, name))
        os.rmdir(path)
    else:
        os.unlink(path)


def control(fs, mountpoint):
    for line in sys.stdin:
        if line.strip() == 'crash':
            fs.crash()
            print('crashed', flush=True)
    subprocess.run(['umount', '-l', mountpoint], check=False)


def main():
    backing, mountpoint = sys.argv[1:3]
    fs = LazyFS(backing)
    threading.Thread(target=control, args=(fs, mountpoint), daemon=True).start()
    fuse.FUSE(fs, mountpoint, foreground=True, nothreads=True, fsname='lazyfs')


if __name__ == '__main__':
    main()
