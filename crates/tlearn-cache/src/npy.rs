//! Reading `features.npy` (and `views.npy`) with its declared size checked against the file
//! first.
//!
//! ndarray-npy (0.9) allocates the whole array from the header's `shape` before it reads a byte
//! of data (`vec![0.0; len]`, even before it checks the dtype), so a 128-byte file declaring
//! 10^12 floats asks the allocator for 4 TB and aborts the process, and a version-2 header may
//! declare a 4 GB header. Here the header (numpy's `.npy` format: magic, version, header length,
//! a Python dict literal parsed with `py_literal`, the crate ndarray-npy itself uses) is read
//! first and the declared size compared with the bytes the file holds; only then is the file
//! handed to ndarray-npy, whose allocation is then bounded by the file's length.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use ndarray::{Array2, Array3};
use ndarray_npy::ReadNpyExt;

use crate::error::CacheError;

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// numpy itself refuses headers over 10,000 bytes unless told otherwise (`max_header_size`).
const MAX_HEADER: u64 = 65_536;
/// A 2-D array's header holds two bracket pairs (`{...}` and `(N, D)`); a deeply nested literal
/// is refused before the recursive parser sees it.
const MAX_BRACKETS: usize = 8;

/// Check that the `shape` the header of the `.npy` file `path` declares fits in the file as
/// float32.
fn check_declared_size(path: &Path, file: &mut File, len: u64) -> Result<(), CacheError> {
    let bad = |m: String| CacheError::invalid(path, m);
    let io = |e| CacheError::io("reading", path, e);
    let mut lead = [0u8; 10];
    file.read_exact(&mut lead)
        .map_err(|_| bad(format!("not a numpy .npy file ({len} bytes, no header)")))?;
    if &lead[..6] != MAGIC {
        return Err(bad("not a numpy .npy file (no \\x93NUMPY magic)".into()));
    }
    let (header_len, prefix) = match lead[6] {
        1 => (u16::from_le_bytes([lead[8], lead[9]]) as u64, 10u64),
        2 | 3 => {
            let mut more = [0u8; 2];
            file.read_exact(&mut more)
                .map_err(|_| bad("truncated .npy header".into()))?;
            (
                u32::from_le_bytes([lead[8], lead[9], more[0], more[1]]) as u64,
                12,
            )
        }
        v => return Err(bad(format!(".npy format version {v} is not supported"))),
    };
    if header_len > MAX_HEADER || prefix + header_len > len {
        return Err(bad(format!(
            "the .npy header declares {header_len} bytes but the file has {len}"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(io)?;
    let text = std::str::from_utf8(&header)
        .map_err(|_| bad("the .npy header is not text".into()))?
        .trim();
    if text
        .chars()
        .filter(|c| matches!(c, '(' | '[' | '{'))
        .count()
        > MAX_BRACKETS
    {
        return Err(bad("the .npy header is not a 2-D array's header".into()));
    }
    let dict: py_literal::Value = text
        .parse()
        .map_err(|e| bad(format!("the .npy header does not parse: {e}")))?;
    let py_literal::Value::Dict(entries) = dict else {
        return Err(bad("the .npy header is not a dict".into()));
    };
    let descr = entries
        .iter()
        .find(|(k, _)| matches!(k, py_literal::Value::String(s) if s == "descr"))
        .map(|(_, v)| v);
    match descr {
        Some(py_literal::Value::String(d)) if d == "<f4" => {}
        Some(py_literal::Value::String(d)) => {
            return Err(bad(format!(
                "the array's dtype is {} ('{d}'), but a feature cache holds float32 ('<f4'); \
                 convert it (numpy: a.astype('<f4')) or extract again",
                dtype_name(d)
            )))
        }
        Some(other) => return Err(bad(format!("the .npy 'descr' is {other}, not a dtype"))),
        None => return Err(bad("the .npy header has no 'descr'".into())),
    }
    let shape = entries
        .iter()
        .find(|(k, _)| matches!(k, py_literal::Value::String(s) if s == "shape"))
        .map(|(_, v)| v)
        .ok_or_else(|| bad("the .npy header has no 'shape'".into()))?;
    let py_literal::Value::Tuple(dims) = shape else {
        return Err(bad(format!("the .npy 'shape' is {shape}, not a tuple")));
    };
    let dims: Vec<u64> = dims
        .iter()
        .map(|d| match d {
            py_literal::Value::Integer(i) => u64::try_from(i).ok(),
            _ => None,
        })
        .collect::<Option<_>>()
        .ok_or_else(|| bad(format!("the .npy 'shape' {shape} is not a tuple of sizes")))?;
    let data = len - prefix - header_len;
    let fits = dims
        .iter()
        .try_fold(4u64, |acc, &d| acc.checked_mul(d))
        .is_some_and(|bytes| bytes <= data);
    if !fits {
        return Err(bad(format!(
            "the .npy header declares shape {shape} (float32) but the file holds only {data} \
             bytes of data (truncated or damaged)"
        )));
    }
    Ok(())
}

/// A numpy dtype string in words: `<f2` is little-endian float16.
fn dtype_name(descr: &str) -> String {
    let (order, code) = match descr.as_bytes().first() {
        Some(b'<') => ("little-endian ", &descr[1..]),
        Some(b'>') => ("big-endian ", &descr[1..]),
        Some(b'|' | b'=') => ("", &descr[1..]),
        _ => ("", descr),
    };
    let kind = match code.as_bytes().first() {
        Some(b'f') => "float",
        Some(b'i') => "int",
        Some(b'u') => "uint",
        Some(b'b') => "bool",
        Some(b'c') => "complex",
        _ => return format!("'{descr}'"),
    };
    match code[1..].parse::<u32>() {
        Ok(bytes) if kind != "bool" => format!("{order}{kind}{}", bytes * 8),
        _ => format!("{order}{kind}"),
    }
}

/// Read `path` as a float32 `[N, D]` array, refusing a header that declares more data than the
/// file holds before anything is allocated for it.
pub(crate) fn read_features(path: &Path) -> Result<Array2<f32>, CacheError> {
    read_checked(path, "[N, D]")
}

/// Read `path` (`views.npy`) as a float32 `[N, V, D]` array, with the same check.
pub(crate) fn read_views(path: &Path) -> Result<Array3<f32>, CacheError> {
    read_checked(path, "[N, V, D]")
}

/// The size check, then ndarray-npy's reader for a float32 array of dimension `Dim` (`shape`
/// names it in the error).
fn read_checked<Dim: ndarray::Dimension>(
    path: &Path,
    shape: &str,
) -> Result<ndarray::Array<f32, Dim>, CacheError> {
    let mut file = File::open(path).map_err(|e| CacheError::io("opening", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| CacheError::io("reading", path, e))?
        .len();
    check_declared_size(path, &mut file, len)?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| CacheError::io("reading", path, e))?;
    ndarray::Array::<f32, Dim>::read_npy(BufReader::new(file)).map_err(|e| {
        CacheError::invalid(
            path,
            format!("not a float32 C-order {shape} numpy array: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray_npy::WriteNpyExt;

    /// A version-1 `.npy` file: `header` padded as numpy pads it, then `data`.
    fn npy(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.as_bytes().to_vec();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(b' ');
        }
        h.push(b'\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out
    }

    fn read(bytes: &[u8]) -> Result<Array2<f32>, String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("features.npy");
        std::fs::write(&p, bytes).unwrap();
        read_features(&p).map_err(|e| e.to_string())
    }

    #[test]
    fn a_real_array_reads_back() {
        let a = Array2::from_shape_fn((3, 5), |(i, j)| (i * 5 + j) as f32);
        let mut bytes = Vec::new();
        a.write_npy(&mut bytes).unwrap();
        assert_eq!(read(&bytes).unwrap(), a);
    }

    #[test]
    fn a_header_declaring_more_than_the_file_holds_is_refused_before_allocating() {
        // Before: ndarray-npy asked for 4 TB and the process aborted
        // ("memory allocation of 4000000000000 bytes failed").
        let data = [0u8; 64];
        let huge = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }";
        let err = read(&npy(huge, &data)).unwrap_err();
        assert!(err.contains("declares shape (1000000, 1000000)"), "{err}");
        let overflow =
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }";
        assert!(read(&npy(overflow, &data))
            .unwrap_err()
            .contains("declares"));
        let negative = "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 4), }";
        assert!(read(&npy(negative, &data))
            .unwrap_err()
            .contains("not a tuple of sizes"));
        // A version-2 header length of 4 GB in a 20-byte file.
        let mut v2 = b"\x93NUMPY\x02\x00\xff\xff\xff\xff".to_vec();
        v2.extend_from_slice(&[b' '; 8]);
        assert!(read(&v2)
            .unwrap_err()
            .contains("header declares 4294967295 bytes"));
        let nested = format!("{}{}", "(".repeat(5000), ")".repeat(5000));
        assert!(read(&npy(&nested, &data))
            .unwrap_err()
            .contains("not a 2-D array's header"));
        // Another dtype is named as such, not as a truncated float32 array.
        let f8 = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 4), }";
        let err = read(&npy(f8, &data)).unwrap_err();
        assert!(
            err.contains("dtype is little-endian float64 ('<f8')"),
            "{err}"
        );
        let f2 = "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3), }";
        let err = read(&npy(f2, &data[..12])).unwrap_err();
        assert!(
            err.contains("little-endian float16 ('<f2')") && !err.contains("truncated"),
            "{err}"
        );
        let be = "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 4), }";
        assert!(read(&npy(be, &data))
            .unwrap_err()
            .contains("big-endian float32"));
    }
}
