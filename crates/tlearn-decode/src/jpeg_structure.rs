//! Does a JPEG's data reach its end-of-image marker? The check for truncated JPEGs on the
//! path of the `image` crate's decoder (zune-jpeg).
//!
//! A JPEG cut short must be skipped ("truncated"), as PIL does by default (`image file is
//! truncated`, also when only the final EOI marker is missing; data after EOI is accepted).
//! libjpeg-turbo says so itself: its source manager warns `JWRN_JPEG_EOF` when the data runs
//! out before EOI, and [`crate::jpeg`] turns that warning into the error on its reduced-size
//! path. zune-jpeg gives no such signal: the `image` crate runs it with `strict_mode(false)`
//! (not settable from outside), and on premature end of data zune-jpeg fills the rest of the
//! image with grey (`fill(128)` in `mcu.rs`) and logs through `zune_core::log`, a no-op in this
//! build; its strict mode would also refuse benign deviations that PIL and libjpeg accept. So
//! this module walks the marker structure the way libjpeg reads it: segments by their length,
//! entropy-coded data up to the next marker that is neither a stuffed `FF 00` nor a restart
//! marker, until EOI. Running out of bytes first is exactly libjpeg's `JWRN_JPEG_EOF`
//! condition; the two verdicts agree on the cut photos of the tests. EOI inside an EXIF
//! thumbnail does not count (APP segments are skipped whole). The walk is linear in the file
//! and reads no pixels (well under a millisecond for a 3 MB photo).

/// What the marker walk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JpegEnd {
    /// EOI reached (anything after it is ignored, as libjpeg and PIL do).
    Complete,
    /// The data ends before EOI.
    Truncated,
    /// Not a marker structure this walk understands: the decoder decides.
    Unparsable,
}

/// The walk's verdict, and whether a progressive frame header (SOF2, SOF6, SOF10, SOF14) was
/// seen: progressive decoders hold every DCT coefficient of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegStructure {
    pub end: JpegEnd,
    pub progressive: bool,
}

/// Walk `b`'s markers from SOI to EOI.
pub fn jpeg_structure(b: &[u8]) -> JpegStructure {
    let mut progressive = false;
    let end = walk(b, &mut progressive);
    JpegStructure { end, progressive }
}

fn walk(b: &[u8], progressive: &mut bool) -> JpegEnd {
    if b.len() < 2 || b[0] != 0xFF || b[1] != 0xD8 {
        return JpegEnd::Unparsable;
    }
    let mut i = 2;
    loop {
        // A marker: 0xFF (any number of fill bytes 0xFF), then its code.
        if i >= b.len() {
            return JpegEnd::Truncated;
        }
        if b[i] != 0xFF {
            return JpegEnd::Unparsable;
        }
        while i < b.len() && b[i] == 0xFF {
            i += 1;
        }
        let Some(&code) = b.get(i) else {
            return JpegEnd::Truncated;
        };
        i += 1;
        match code {
            0xD9 => return JpegEnd::Complete,
            // Standalone markers: no length.
            0x01 | 0xD0..=0xD7 | 0xD8 => continue,
            0x00 => return JpegEnd::Unparsable,
            _ => {}
        }
        if matches!(code, 0xC2 | 0xC6 | 0xCA | 0xCE) {
            *progressive = true;
        }
        let Some(len) = b
            .get(i..i + 2)
            .map(|l| u16::from_be_bytes([l[0], l[1]]) as usize)
        else {
            return JpegEnd::Truncated;
        };
        if len < 2 {
            return JpegEnd::Unparsable;
        }
        i += len;
        if i > b.len() {
            return JpegEnd::Truncated;
        }
        if code == 0xDA {
            // Entropy-coded data of a scan: up to the next real marker.
            loop {
                let Some(off) = memchr::memchr(0xFF, &b[i..]) else {
                    return JpegEnd::Truncated;
                };
                i += off;
                match b.get(i + 1) {
                    None => return JpegEnd::Truncated,
                    Some(0x00 | 0xD0..=0xD7) => i += 2,
                    // 0xFF: a fill byte before the marker; the outer loop skips it.
                    Some(_) => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(code: u8, body: &[u8]) -> Vec<u8> {
        let mut s = vec![0xFF, code];
        s.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
        s.extend_from_slice(body);
        s
    }

    #[test]
    fn eoi_in_a_thumbnail_stuffed_bytes_and_restarts_do_not_end_the_image() {
        let mut j = vec![0xFF, 0xD8];
        j.extend(seg(0xE1, &[0xFF, 0xD8, 1, 2, 0xFF, 0xD9])); // EXIF thumbnail
        j.extend(seg(0xC2, &[8, 0, 1, 0, 1, 1, 1, 0x11, 0]));
        j.extend(seg(0xDA, &[1, 1, 0, 0, 63, 0]));
        j.extend([0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3, 0x56]); // data, stuffed FF, RST3
        let body = j.clone();
        j.extend([0xFF, 0xFF, 0xD9]); // fill byte, EOI
        let complete = jpeg_structure(&j);
        assert_eq!(complete.end, JpegEnd::Complete);
        assert!(complete.progressive);
        let mut garbage = j.clone();
        garbage.extend(b"trailing bytes");
        assert_eq!(jpeg_structure(&garbage).end, JpegEnd::Complete);
        for cut in 2..j.len() {
            assert_eq!(jpeg_structure(&j[..cut]).end, JpegEnd::Truncated, "{cut}");
        }
        assert_eq!(jpeg_structure(&body).end, JpegEnd::Truncated);
        assert_eq!(jpeg_structure(b"GIF89a").end, JpegEnd::Unparsable);
        assert_eq!(
            jpeg_structure(&[0xFF, 0xD8, 0x12, 0x34]).end,
            JpegEnd::Unparsable
        );
    }
}
