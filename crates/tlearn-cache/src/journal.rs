//! The resume journal `journal.bin`: while an extraction runs, every newly extracted vector is
//! appended (a header line with the extractor fingerprint as JSON, then length-framed records
//! `TLR1 | len path | len sha256 | dim | f32 LE × dim`), flushed after every vector. A run that
//! is killed leaves the previous cache untouched plus the journal; the next run with the same
//! fingerprint (compared by value) reuses the journal's vectors, matched by path and content
//! hash. A torn last record (killed mid-write) is ignored and cut off on reopening.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::CacheError;
use crate::fingerprint::Fingerprint;
use crate::JOURNAL_FILE;

const RECORD_TAG: &[u8; 4] = b"TLR1";

/// Vectors of an unfinished run, keyed by (path, sha256).
pub type JournalMap = HashMap<(String, String), Vec<f32>>;

/// Append-only log of vectors extracted by an unfinished run.
pub struct JournalWriter {
    w: BufWriter<File>,
    path: PathBuf,
}

impl JournalWriter {
    /// Open `dir/journal.bin` for appending after its last complete record; a journal for
    /// another fingerprint (or none) is started afresh.
    pub fn open(dir: &Path, fingerprint: &Fingerprint) -> Result<JournalWriter, CacheError> {
        fs::create_dir_all(dir).map_err(|e| CacheError::io("creating", dir, e))?;
        let path = dir.join(JOURNAL_FILE);
        let io = |action, e| CacheError::io(action, &path, e);
        let file = match scan(&path, fingerprint)? {
            Some((_, valid_len)) => {
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| io("opening", e))?;
                // Drop a torn last record so appended records stay readable.
                f.set_len(valid_len).map_err(|e| io("truncating", e))?;
                f.seek(SeekFrom::End(0)).map_err(|e| io("seeking in", e))?;
                f
            }
            None => {
                let mut f = File::create(&path).map_err(|e| io("creating", e))?;
                let header = serde_json::to_string(fingerprint).expect("a fingerprint serialises");
                f.write_all(header.as_bytes())
                    .and_then(|_| f.write_all(b"\n"))
                    .map_err(|e| io("writing", e))?;
                f
            }
        };
        Ok(JournalWriter {
            w: BufWriter::new(file),
            path,
        })
    }

    pub fn append(&mut self, path: &str, sha256: &str, vector: &[f32]) -> Result<(), CacheError> {
        let mut rec = Vec::with_capacity(16 + path.len() + sha256.len() + vector.len() * 4);
        rec.extend_from_slice(RECORD_TAG);
        for s in [path, sha256] {
            rec.extend_from_slice(&(s.len() as u32).to_le_bytes());
            rec.extend_from_slice(s.as_bytes());
        }
        rec.extend_from_slice(&(vector.len() as u32).to_le_bytes());
        for x in vector {
            rec.extend_from_slice(&x.to_le_bytes());
        }
        self.w
            .write_all(&rec)
            .map_err(|e| CacheError::io("appending to", &self.path, e))
    }

    /// Push buffered records to the OS (survives the process being killed).
    pub fn flush(&mut self) -> Result<(), CacheError> {
        self.w
            .flush()
            .map_err(|e| CacheError::io("flushing", &self.path, e))
    }
}

/// Parse a journal whose header is `fingerprint`: its complete records and the byte length
/// they span; `None` when absent or made by another extractor.
fn scan(path: &Path, fingerprint: &Fingerprint) -> Result<Option<(JournalMap, u64)>, CacheError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CacheError::io("opening", path, e)),
    };
    let file_len = file
        .metadata()
        .map_err(|e| CacheError::io("reading", path, e))?
        .len();
    let mut r = BufReader::new(file);
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return Ok(None);
    }
    let Some(header) = line.strip_suffix('\n') else {
        return Ok(None);
    };
    match serde_json::from_str::<Fingerprint>(header) {
        Ok(f) if f == *fingerprint => {}
        _ => return Ok(None),
    }
    let mut valid = line.len() as u64;
    let mut out = HashMap::new();
    // Records until EOF; a torn (partial) last record ends the loop. No length field can make
    // a read allocate more than the bytes left in the file.
    while let Some((p, s, v, n)) = read_record(&mut r, file_len.saturating_sub(valid)) {
        out.insert((p, s), v);
        valid += n;
    }
    Ok(Some((out, valid)))
}

/// Vectors from an unfinished run's journal. Empty when there is no journal or it belongs to
/// another fingerprint.
pub fn read_journal(dir: &Path, fingerprint: &Fingerprint) -> Result<JournalMap, CacheError> {
    Ok(scan(&dir.join(JOURNAL_FILE), fingerprint)?
        .map(|(m, _)| m)
        .unwrap_or_default())
}

/// The fingerprint in the header of `dir`'s journal (an unfinished run's extractor), `None` when
/// there is no journal or its header does not parse.
pub fn journal_fingerprint(dir: &Path) -> Option<Fingerprint> {
    let mut r = BufReader::new(File::open(dir.join(JOURNAL_FILE)).ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    serde_json::from_str(line.strip_suffix('\n')?).ok()
}

/// Remove the journal after a successful write.
pub fn remove_journal(dir: &Path) -> Result<(), CacheError> {
    let p = dir.join(JOURNAL_FILE);
    match fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CacheError::io("removing", p, e)),
    }
}

fn read_u32(r: &mut impl Read) -> Option<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b).ok()?;
    Some(u32::from_le_bytes(b))
}

fn read_bytes(r: &mut impl Read, len: usize, max: usize) -> Option<Vec<u8>> {
    if len > max {
        return None;
    }
    let mut b = vec![0u8; len];
    r.read_exact(&mut b).ok()?;
    Some(b)
}

/// One record: (path, sha256, vector, bytes consumed), or `None` at EOF / a torn record.
/// `left` is the number of bytes the file has from here: a length field beyond it is a torn
/// or damaged record, refused before allocating.
fn read_record(r: &mut impl Read, left: u64) -> Option<(String, String, Vec<f32>, u64)> {
    let left = usize::try_from(left).unwrap_or(usize::MAX);
    let mut tag = [0u8; 4];
    r.read_exact(&mut tag).ok()?;
    if &tag != RECORD_TAG {
        return None;
    }
    let plen = read_u32(r)? as usize;
    let pb = read_bytes(r, plen, left.min(1 << 16))?;
    let slen = read_u32(r)? as usize;
    let sb = read_bytes(r, slen, 256)?;
    let dim = read_u32(r)? as usize;
    let vb = read_bytes(r, dim.checked_mul(4)?, left.min(1 << 28))?;
    let v = vb
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let n = (4 + 4 + plen + 4 + slen + 4 + dim * 4) as u64;
    Some((
        String::from_utf8(pb).ok()?,
        String::from_utf8(sb).ok()?,
        v,
        n,
    ))
}
