//! The little of a libc gnttest needs: the process entry, Linux system calls
//! on arm64 (`svc #0`, number in x8, result or -errno in x0), files that
//! close and mappings that unmap when dropped, and line output.

use core::arch::{asm, global_asm};
use core::ffi::CStr;
use core::fmt::{self, Write};

// The kernel enters with sp at argc, then the argv pointers.
global_asm!(
    r#"
.section .text._start, "ax"
.global _start
_start:
    mov     x29, #0
    mov     x30, #0
    mov     x0, sp
    bl      gnttest_entry
    brk     #0
"#
);

#[unsafe(no_mangle)]
extern "C" fn gnttest_entry(stack: *const usize) -> ! {
    // SAFETY: the kernel's initial stack holds argc then argc pointers to
    // NUL-terminated strings.
    let args = unsafe {
        let argc = *stack;
        core::slice::from_raw_parts(stack.add(1).cast::<*const core::ffi::c_char>(), argc)
    };
    // SAFETY: see above.
    let arg = |i: usize| unsafe { CStr::from_ptr(args[i]) }.to_str().unwrap_or("");
    let ballooned = (1..args.len()).any(|i| arg(i) == "--ballooned");
    let value = |name: &str| (1..args.len() - 1).find(|&i| arg(i) == name).map(|i| parse_number(arg(i + 1)));
    if let Some(Some(rounds)) = value("--events") {
        exit(crate::probe::events(rounds));
    }
    if let (Some(Some(domid)), Some(Some(gfn))) = (value("--peek"), value("--gfn")) {
        let gone = (1..args.len()).any(|i| arg(i) == "--gone");
        exit(crate::probe::peek(domid as u16, gfn, gone));
    }
    match (value("--domu"), value("--mailbox")) {
        (Some(Some(domid)), Some(Some(mailbox))) => exit(crate::peer::main(domid as u16, mailbox, ballooned)),
        (None, None) => exit(crate::check::main(ballooned)),
        _ => {
            say(format_args!(
                "FAIL usage: gnttest [--ballooned] [--domu ID --mailbox ADDRESS] [--events N] [--peek ID --gfn G [--gone]]"
            ));
            exit(2)
        }
    }
}

/// A number in decimal or `0x` hexadecimal.
fn parse_number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    say(format_args!("FAIL panic: {}", info.message()));
    exit(2)
}

const OPENAT: usize = 56;
const CLOSE: usize = 57;
const READ: usize = 63;
const WRITE: usize = 64;
const PREAD64: usize = 67;
const IOCTL: usize = 29;
const MMAP: usize = 222;
const MUNMAP: usize = 215;
const EXIT_GROUP: usize = 94;
const PPOLL: usize = 73;
const NANOSLEEP: usize = 101;

const AT_FDCWD: usize = -100isize as usize;
const PROT_READ_WRITE: usize = 0x1 | 0x2;
const MAP_SHARED: usize = 0x1;
pub const O_RDONLY: usize = 0;
pub const O_RDWR: usize = 2;
const O_CLOEXEC: usize = 0o2000000;

pub const PAGE_SIZE: usize = 4096;

/// A system call's error number.
#[derive(Clone, Copy, Debug)]
pub struct Errno(pub isize);

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            1 => "EPERM",
            2 => "ENOENT",
            5 => "EIO",
            6 => "ENXIO",
            12 => "ENOMEM",
            13 => "EACCES",
            14 => "EFAULT",
            16 => "EBUSY",
            19 => "ENODEV",
            22 => "EINVAL",
            28 => "ENOSPC",
            38 => "ENOSYS",
            _ => "",
        };
        write!(f, "errno {} {name}", self.0)
    }
}

/// # Safety
/// The arguments must be valid for system call `number`.
unsafe fn syscall(number: usize, args: [usize; 6]) -> Result<usize, Errno> {
    let ret: isize;
    // SAFETY: the caller vouches for the arguments; the kernel preserves
    // every register but x0.
    unsafe {
        asm!(
            "svc #0",
            inlateout("x0") args[0] => ret,
            in("x1") args[1],
            in("x2") args[2],
            in("x3") args[3],
            in("x4") args[4],
            in("x5") args[5],
            in("x8") number,
            options(nostack),
        );
    }
    if (-4095..0).contains(&ret) { Err(Errno(-ret)) } else { Ok(ret as usize) }
}

pub fn exit(code: i32) -> ! {
    // SAFETY: exit_group takes a status and does not return.
    let _ = unsafe { syscall(EXIT_GROUP, [code as usize, 0, 0, 0, 0, 0]) };
    loop {
        core::hint::spin_loop();
    }
}

fn write_all(fd: usize, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: the buffer is valid for its length.
        match unsafe { syscall(WRITE, [fd, bytes.as_ptr() as usize, bytes.len(), 0, 0, 0]) } {
            Ok(0) | Err(_) => return,
            Ok(n) => bytes = &bytes[n..],
        }
    }
}

/// Text in a fixed buffer (there is no allocator), cut short if too long.
pub struct Text<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Text<N> {
    pub const fn new() -> Self {
        Self { buf: [0; N], len: 0 }
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("(not UTF-8)")
    }
}

impl<const N: usize> Write for Text<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(N - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Prints `gnttest: <text>` on standard output in one write, so the line
/// is not split by the kernel's own messages on the console.
pub fn say(text: fmt::Arguments<'_>) {
    let mut line = Text::<512>::new();
    let _ = write!(line, "gnttest: {text}");
    line.len = line.len.min(line.buf.len() - 1);
    line.buf[line.len] = b'\n';
    write_all(1, &line.buf[..=line.len]);
}

/// An open file descriptor, closed when dropped.
pub struct File(usize);

impl File {
    pub fn open(path: &CStr, flags: usize) -> Result<File, Errno> {
        // SAFETY: the path is NUL-terminated.
        unsafe { syscall(OPENAT, [AT_FDCWD, path.as_ptr() as usize, flags | O_CLOEXEC, 0, 0, 0]) }.map(File)
    }

    /// An ioctl whose argument is the structure `arg`, which the kernel
    /// reads and may write back.
    pub fn ioctl<T>(&self, request: u32, arg: &mut T) -> Result<usize, Errno> {
        // SAFETY: `arg` is valid for its size, which `request` encodes.
        unsafe { syscall(IOCTL, [self.0, request as usize, arg as *mut T as usize, 0, 0, 0]) }
    }

    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
        // SAFETY: the buffer is valid for its length.
        unsafe { syscall(PREAD64, [self.0, buf.as_mut_ptr() as usize, buf.len(), offset as usize, 0, 0]) }
    }

    /// One read(): what it returned.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        // SAFETY: the buffer is valid for its length.
        unsafe { syscall(READ, [self.0, buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0]) }
    }

    /// One write(): how much it took.
    pub fn write(&self, buf: &[u8]) -> Result<usize, Errno> {
        // SAFETY: the buffer is valid for its length.
        unsafe { syscall(WRITE, [self.0, buf.as_ptr() as usize, buf.len(), 0, 0, 0]) }
    }

    /// Waits up to `millis` for something to read: whether there is.
    pub fn wait_readable(&self, millis: u64) -> Result<bool, Errno> {
        // struct pollfd { int fd; short events, revents; }, POLLIN 1.
        let mut poll = [self.0 as u32, 1];
        let timeout = [millis / 1000, millis % 1000 * 1_000_000];
        // SAFETY: one pollfd and a timespec, both valid for the call.
        let ready = unsafe { syscall(PPOLL, [poll.as_mut_ptr() as usize, 1, timeout.as_ptr() as usize, 0, 0, 0]) }?;
        Ok(ready == 1)
    }

    /// Reads until end of file or until `buf` is full, returning what was read.
    pub fn read_all<'b>(&self, buf: &'b mut [u8]) -> Result<&'b [u8], Errno> {
        let mut len = 0;
        while len < buf.len() {
            let rest = &mut buf[len..];
            // SAFETY: the buffer is valid for its length.
            match unsafe { syscall(READ, [self.0, rest.as_mut_ptr() as usize, rest.len(), 0, 0, 0]) }? {
                0 => break,
                n => len += n,
            }
        }
        Ok(&buf[..len])
    }

    /// Maps `pages` pages of the file at byte `offset`, shared and writable.
    pub fn map_shared(&self, pages: usize, offset: u64) -> Result<Mapping, Errno> {
        let len = pages * PAGE_SIZE;
        // SAFETY: a new mapping anywhere the kernel chooses.
        let addr = unsafe { syscall(MMAP, [0, len, PROT_READ_WRITE, MAP_SHARED, self.0, offset as usize]) }?;
        Ok(Mapping { addr, len })
    }
}

impl Drop for File {
    fn drop(&mut self) {
        // SAFETY: closes a descriptor this value owns.
        let _ = unsafe { syscall(CLOSE, [self.0, 0, 0, 0, 0, 0]) };
    }
}

/// Sleeps `millis` milliseconds.
pub fn sleep_ms(millis: u64) {
    let time = [millis / 1000, millis % 1000 * 1_000_000];
    // SAFETY: a valid timespec; no remainder wanted.
    let _ = unsafe { syscall(NANOSLEEP, [time.as_ptr() as usize, 0, 0, 0, 0, 0]) };
}

/// Reads a whole (small) file, such as a `/proc` or `/sys` entry.
pub fn read_file<'b>(path: &CStr, buf: &'b mut [u8]) -> Result<&'b [u8], Errno> {
    File::open(path, O_RDONLY)?.read_all(buf)
}

/// A shared mapping of 64-bit words, unmapped when dropped.
pub struct Mapping {
    addr: usize,
    len: usize,
}

impl Mapping {
    pub fn addr(&self) -> usize {
        self.addr
    }

    pub fn words(&self) -> usize {
        self.len / 8
    }

    pub fn read(&self, word: usize) -> u64 {
        assert!(word < self.words());
        // SAFETY: in bounds of a live mapping; volatile because another
        // mapping of the same page writes it.
        unsafe { (self.addr as *const u64).add(word).read_volatile() }
    }

    pub fn write(&self, word: usize, value: u64) {
        assert!(word < self.words());
        // SAFETY: as in `read`; the mapping is writable.
        unsafe { (self.addr as *mut u64).add(word).write_volatile(value) }
    }

    /// Unmaps now, reporting the error that dropping would hide.
    pub fn unmap(self) -> Result<(), Errno> {
        let result = self.unmap_range();
        core::mem::forget(self);
        result
    }

    fn unmap_range(&self) -> Result<(), Errno> {
        // SAFETY: the range is this mapping's, and nothing refers to it after.
        unsafe { syscall(MUNMAP, [self.addr, self.len, 0, 0, 0, 0]) }.map(|_| ())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        let _ = self.unmap_range();
    }
}
