//! Is a binary static? An image `FROM scratch` has no dynamic loader and no libc, so a
//! binary that names a program interpreter (`PT_INTERP`, e.g. `/lib64/ld-linux-x86-64.so.2`)
//! cannot start there. Static-PIE binaries (what `+crt-static` makes on glibc) have a
//! dynamic section but no interpreter, and run fine.

use anyhow::{bail, ensure};

/// How an ELF executable is linked, as far as running it `FROM scratch` goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linkage {
    Static,
    /// Needs this program interpreter (dynamic loader) at run time.
    Dynamic {
        interpreter: String,
    },
}

const PT_INTERP: u32 = 3;

/// Reads the ELF header and program headers of `bytes`.
pub fn linkage(bytes: &[u8]) -> anyhow::Result<Linkage> {
    ensure!(
        bytes.len() >= 52 && bytes[..4] == [0x7f, b'E', b'L', b'F'],
        "not an ELF file"
    );
    let wide = match bytes[4] {
        1 => false,
        2 => true,
        class => bail!("unknown ELF class {class}"),
    };
    let little = match bytes[5] {
        1 => true,
        2 => false,
        data => bail!("unknown ELF data encoding {data}"),
    };
    let read = Reader { bytes, little };

    let (phoff, phentsize, phnum) = if wide {
        (read.u64(0x20)?, read.u16(0x36)?, read.u16(0x38)?)
    } else {
        (u64::from(read.u32(0x1c)?), read.u16(0x2a)?, read.u16(0x2c)?)
    };
    for index in 0..u64::from(phnum) {
        let header = phoff + index * u64::from(phentsize);
        if read.u32(header)? != PT_INTERP {
            continue;
        }
        let (offset, size) = if wide {
            (read.u64(header + 0x08)?, read.u64(header + 0x20)?)
        } else {
            (
                u64::from(read.u32(header + 0x04)?),
                u64::from(read.u32(header + 0x10)?),
            )
        };
        let raw = read.slice(offset, size)?;
        let interpreter = String::from_utf8_lossy(raw)
            .trim_end_matches('\0')
            .to_owned();
        return Ok(Linkage::Dynamic { interpreter });
    }
    Ok(Linkage::Static)
}

struct Reader<'a> {
    bytes: &'a [u8],
    little: bool,
}

impl Reader<'_> {
    fn slice(&self, offset: u64, len: u64) -> anyhow::Result<&[u8]> {
        let start = usize::try_from(offset)?;
        let end = start.saturating_add(usize::try_from(len)?);
        match self.bytes.get(start..end) {
            Some(slice) => Ok(slice),
            None => bail!("truncated ELF file (wanted bytes {start}..{end})"),
        }
    }

    fn array<const N: usize>(&self, offset: u64) -> anyhow::Result<[u8; N]> {
        let mut out = [0; N];
        out.copy_from_slice(self.slice(offset, N as u64)?);
        Ok(out)
    }

    fn u16(&self, offset: u64) -> anyhow::Result<u16> {
        let raw = self.array(offset)?;
        Ok(if self.little {
            u16::from_le_bytes(raw)
        } else {
            u16::from_be_bytes(raw)
        })
    }

    fn u32(&self, offset: u64) -> anyhow::Result<u32> {
        let raw = self.array(offset)?;
        Ok(if self.little {
            u32::from_le_bytes(raw)
        } else {
            u32::from_be_bytes(raw)
        })
    }

    fn u64(&self, offset: u64) -> anyhow::Result<u64> {
        let raw = self.array(offset)?;
        Ok(if self.little {
            u64::from_le_bytes(raw)
        } else {
            u64::from_be_bytes(raw)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal 64-bit little-endian ELF: header, then `types.len()` program headers,
    /// then the interpreter string (pointed to by any PT_INTERP header).
    fn elf64(types: &[u32], interpreter: &str) -> Vec<u8> {
        let phoff = 64u64;
        let phentsize = 56u16;
        let strings = phoff + u64::from(phentsize) * types.len() as u64;
        let mut bytes = vec![0u8; 64];
        bytes[..4].copy_from_slice(&[0x7f, b'E', b'L', b'F']);
        bytes[4] = 2; // 64-bit
        bytes[5] = 1; // little-endian
        bytes[6] = 1; // version
        bytes[0x10..0x12].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN
        bytes[0x20..0x28].copy_from_slice(&phoff.to_le_bytes());
        bytes[0x36..0x38].copy_from_slice(&phentsize.to_le_bytes());
        bytes[0x38..0x3a].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for &kind in types {
            let mut header = vec![0u8; usize::from(phentsize)];
            header[..4].copy_from_slice(&kind.to_le_bytes());
            header[0x08..0x10].copy_from_slice(&strings.to_le_bytes());
            header[0x20..0x28].copy_from_slice(&(interpreter.len() as u64 + 1).to_le_bytes());
            bytes.extend(header);
        }
        bytes.extend(interpreter.as_bytes());
        bytes.push(0);
        bytes
    }

    #[test]
    fn static_pie_without_interpreter_is_static() {
        // PT_LOAD, PT_DYNAMIC, PT_GNU_STACK: what a +crt-static glibc binary has.
        let bytes = elf64(&[1, 2, 0x6474_e551], "");
        assert_eq!(linkage(&bytes).unwrap(), Linkage::Static);
    }

    #[test]
    fn interpreter_means_dynamic() {
        let bytes = elf64(&[6, 3, 1, 2], "/lib64/ld-linux-x86-64.so.2");
        assert_eq!(
            linkage(&bytes).unwrap(),
            Linkage::Dynamic {
                interpreter: "/lib64/ld-linux-x86-64.so.2".to_owned()
            }
        );
    }

    #[test]
    fn the_test_binary_itself_is_read() {
        // Test binaries are normally linked dynamically, with an interpreter.
        let path = std::env::current_exe().unwrap();
        let bytes = std::fs::read(path).unwrap();
        match linkage(&bytes).unwrap() {
            Linkage::Dynamic { interpreter } => assert!(interpreter.starts_with('/')),
            Linkage::Static => {}
        }
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        assert!(linkage(b"#!/bin/sh\necho hi\n").is_err());
        let mut bytes = elf64(&[3], "/lib/ld.so");
        bytes.truncate(100);
        assert!(linkage(&bytes).is_err());
    }
}
