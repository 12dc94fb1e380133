//! A writer of `newc` cpio archives, the format Linux unpacks as an
//! initramfs: directories, regular files and symbolic links, owned by root,
//! uncompressed. Made here so building an initramfs needs neither root nor
//! host tools.

/// File type bits of `st_mode`.
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

/// An archive being built in memory.
pub struct Archive {
    bytes: Vec<u8>,
    next_inode: u32,
}

impl Default for Archive {
    fn default() -> Self {
        Self::new()
    }
}

impl Archive {
    pub fn new() -> Self {
        Self { bytes: Vec::new(), next_inode: 1 }
    }

    /// A directory `path` (no leading `/`) with permission bits `mode`.
    pub fn directory(&mut self, path: &str, mode: u32) -> &mut Self {
        self.entry(path, S_IFDIR | mode, 2, &[])
    }

    /// A regular file `path` with permission bits `mode`.
    pub fn file(&mut self, path: &str, mode: u32, content: &[u8]) -> &mut Self {
        self.entry(path, S_IFREG | mode, 1, content)
    }

    /// A symbolic link `path` pointing at `target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.entry(path, S_IFLNK | 0o777, 1, target.as_bytes())
    }

    /// The finished archive, with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.next_inode = 0;
        self.entry("TRAILER!!!", 0, 1, &[]);
        self.bytes
    }

    /// One header, then the NUL-terminated name and the data, each padded
    /// to four bytes. All numbers are eight hexadecimal digits.
    fn entry(&mut self, path: &str, mode: u32, links: u32, data: &[u8]) -> &mut Self {
        assert!(!path.starts_with('/') && !path.is_empty(), "archive paths are relative: {path:?}");
        let name_size = path.len() + 1;
        let fields = [
            self.next_inode,
            mode,
            0, // uid
            0, // gid
            links,
            0, // mtime: fixed, so the same inputs make the same archive
            u32::try_from(data.len()).expect("a file under 4 GiB"),
            0, // device major and minor of the file's file system
            0,
            0, // rdev major and minor (device nodes only)
            0,
            u32::try_from(name_size).expect("a short name"),
            0, // checksum, unused by `newc`
        ];
        self.bytes.extend_from_slice(b"070701");
        for field in fields {
            self.bytes.extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.bytes.extend_from_slice(path.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
        self.next_inode += 1;
        self
    }

    fn pad(&mut self) {
        self.bytes.resize(self.bytes.len().next_multiple_of(4), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses an archive back: (name, mode, data) per entry.
    fn entries(bytes: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut at = 0;
        let mut out = Vec::new();
        loop {
            assert_eq!(&bytes[at..at + 6], b"070701");
            let field = |i: usize| {
                u32::from_str_radix(std::str::from_utf8(&bytes[at + 6 + 8 * i..at + 14 + 8 * i]).unwrap(), 16).unwrap()
            };
            let (mode, size, name_size) = (field(1), field(6) as usize, field(11) as usize);
            let name_at = at + 110;
            let name = std::str::from_utf8(&bytes[name_at..name_at + name_size - 1]).unwrap().to_string();
            assert_eq!(bytes[name_at + name_size - 1], 0);
            let data_at = (name_at + name_size).next_multiple_of(4);
            at = (data_at + size).next_multiple_of(4);
            if name == "TRAILER!!!" {
                assert_eq!(at, bytes.len());
                return out;
            }
            out.push((name, mode, bytes[data_at..data_at + size].to_vec()));
        }
    }

    fn sample() -> Vec<u8> {
        let mut archive = Archive::new();
        archive.directory("bin", 0o755).file("bin/busybox", 0o755, b"\x7fELF...").symlink("bin/sh", "busybox");
        archive.file("init", 0o755, b"#!/bin/sh\n");
        archive.finish()
    }

    #[test]
    fn entries_read_back() {
        let bytes = sample();
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(
            entries(&bytes),
            vec![
                ("bin".into(), 0o040755, vec![]),
                ("bin/busybox".into(), 0o100755, b"\x7fELF...".to_vec()),
                ("bin/sh".into(), 0o120777, b"busybox".to_vec()),
                ("init".into(), 0o100755, b"#!/bin/sh\n".to_vec()),
            ]
        );
    }

    #[test]
    #[should_panic(expected = "relative")]
    fn absolute_paths_are_refused() {
        Archive::new().file("/init", 0o755, b"");
    }
}
