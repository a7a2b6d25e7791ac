//! Baseline JPEGs decoded at 1/8 scale, byte-identical to libjpeg-turbo's output at that
//! scale, but faster: the path every 8-12 MP camera photo takes in [`crate::jpeg`]'s
//! reduced-size decoding.
//!
//! Why hand-written: at 1/8 scale a luma block needs only its DC coefficient, yet libjpeg-turbo
//! (the `mozjpeg` crate, C paths without SIMD) still runs its full Huffman decoder over every
//! AC coefficient (`decode_mcu_fast`: an 8-bit lookahead, a byte-by-byte bit-buffer fill with
//! 0xFF checks, the magnitude bits dropped separately); perf put 80% of its ~20 ms per 12-MP
//! photo there. No maintained crate decodes at 1/8 scale faster: `jpeg-decoder`'s scaled
//! decode took 31-46 ms on the same photos, and zune-jpeg cannot scale. This module skips a
//! DC-only block's AC coefficients with a 64-bit bit buffer refilled eight bytes at a time
//! when none of them is 0xFF, and a 14-bit lookahead table whose entry gives, for every whole
//! coefficient (code and magnitude) that fits, the bits to drop and the position advance, so
//! one lookup skips several coefficients. Measured on the 40 4032×3024 photos of
//! `bench/extract_bench.py --make-jpeg12` (quality 90, 4:2:0), one core, quiet machine
//! (`examples/eighth_bench.rs`): libjpeg-turbo 17.5-17.7 ms per photo at 1/8, this module
//! 11.5-11.7 ms (1.51×; libjpeg's entropy decoding alone was ~14 ms of its 17.5).
//!
//! What it replicates of libjpeg-turbo (read from the vendored 2.x source of `mozjpeg-sys`):
//! `jdmaster.c`'s choice of each component's scaled IDCT size (a 4:2:0 image's chroma gets the
//! 2×2 IDCT instead of upsampling), `jidctred.c`'s `jpeg_idct_1x1` and `jpeg_idct_2x2`
//! (dequantise, fixed-point, the post-IDCT range-limit table), `jdsample.c`'s box upsampling
//! (its fancy upsampling is off when the scaled DCT size is 1), `jdcolor.c`'s fixed-point
//! YCbCr→RGB tables, `jdhuff.c`'s table building, DC prediction (an `int`, stored as a 16-bit
//! coefficient), and coefficient positions past 63 (`jpeg_natural_order`'s padding).
//!
//! Anything else returns `None` so the caller takes libjpeg: progressive, arithmetic or
//! lossless coding, 12-bit samples, 16-bit quantisation tables, components other than 1 or 3,
//! Adobe (APP14) or RGB-labelled files, IDCT sizes other than 1 and 2, scans that do not hold
//! every component in frame order, a missing table, any Huffman code not in its table, data
//! that runs out, extra bytes or unexpected markers where libjpeg would warn or skip, restart
//! markers out of sequence, and a scan not followed by EOI. Errors and truncation are thus
//! reported by libjpeg exactly as before.

use image::RgbImage;

/// `jpeg_natural_order` (jutils.c): zig-zag index → natural index, with libjpeg's 16 extra
/// entries so that a corrupt run past 63 writes coefficient 63.
const NATURAL: [u8; 80] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
    63, 63, 63, 63, 63, 63,
];

/// Lookahead bits of the Huffman tables.
const LOOK: u32 = 11;
/// Lookahead bits of the several-coefficient table.
const MULTI: u32 = 14;

/// A Huffman table as `jpeg_make_d_derived_tbl` builds it, plus lookahead tables.
struct Huffman {
    /// Largest code of each length (index 1..=16), -1 when none.
    maxcode: [i32; 18],
    /// Index into `vals` of a code of each length, minus that code.
    valoffset: [i32; 17],
    vals: [u8; 256],
    /// Codes of at most `LOOK` bits: `length << 8 | symbol`; 0 for longer codes.
    look: Vec<u16>,
    /// A whole coefficient (code and magnitude) within `LOOK` bits: AC tables
    /// `value << 16 | advance << 8 | bits`, advance 64 for end-of-block; DC tables
    /// `difference << 16 | 1 << 8 | bits`; 0 otherwise.
    fast: Vec<u32>,
    /// AC tables: every whole coefficient (and a final end-of-block) that fits in the next
    /// `MULTI` bits, for blocks whose AC values are not needed: `eob << 12 | advance << 5 |
    /// bits`; 0 when not even one coefficient fits.
    multi: Vec<u16>,
}

/// `HUFF_EXTEND`: `s` magnitude bits `x` → the signed value.
#[inline(always)]
fn extend(x: i32, s: u32) -> i32 {
    if s == 0 {
        0
    } else {
        // jdhuff.h HUFF_EXTEND, branch-free as there.
        x + (((x - (1 << (s - 1))) >> 31) & ((-1 << s) + 1))
    }
}

impl Huffman {
    /// `counts[l-1]` codes of length `l`, symbols `vals`; `None` where libjpeg refuses the table.
    fn new(counts: &[u8; 16], vals: &[u8], dc: bool) -> Option<Huffman> {
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        if total > 256 || vals.len() != total || (dc && vals.iter().any(|&v| v > 15)) {
            return None;
        }
        let mut maxcode = [-1i32; 18];
        let mut valoffset = [0i32; 17];
        let mut look = vec![0u16; 1 << LOOK];
        let mut fast = vec![0u32; 1 << LOOK];
        let mut code: u32 = 0;
        let mut p = 0usize;
        for l in 1..=16u32 {
            let n = counts[l as usize - 1] as usize;
            if n > 0 {
                valoffset[l as usize] = p as i32 - code as i32;
                for &sym in &vals[p..p + n] {
                    if l <= LOOK {
                        let shift = LOOK - l;
                        let base = (code << shift) as usize;
                        for fill in 0..(1usize << shift) {
                            let i = base | fill;
                            look[i] = (l << 8) as u16 | sym as u16;
                            fast[i] = if dc {
                                dc_entry(i as u32, l, sym)
                            } else {
                                fast_entry(i as u32, l, sym)
                            };
                        }
                    }
                    code += 1;
                }
                p += n;
                maxcode[l as usize] = code as i32 - 1;
            }
            // jdhuff.c: the all-ones code of a length (or more codes than fit) is refused.
            if code >= 1 << l {
                return None;
            }
            code <<= 1;
        }
        maxcode[17] = 0xFFFFF;
        let mut v = [0u8; 256];
        v[..total].copy_from_slice(vals);
        let mut t = Huffman {
            maxcode,
            valoffset,
            vals: v,
            look,
            fast,
            multi: Vec::new(),
        };
        if !dc {
            t.multi = (0..1u32 << MULTI).map(|i| t.multi_entry(i)).collect();
        }
        Some(t)
    }

    /// The code at the top of the `avail`-bit window `w`: (length, symbol).
    fn decode_window(&self, w: u32, avail: u32) -> Option<(u32, u8)> {
        for l in 1..=avail.min(16) {
            let code = (w >> (avail - l)) as i32;
            if code <= self.maxcode[l as usize] {
                let i = usize::try_from(code + self.valoffset[l as usize]).ok()?;
                return self.vals.get(i).map(|&s| (l, s));
            }
        }
        None
    }

    /// The `multi` entry of the `MULTI`-bit window `i`.
    fn multi_entry(&self, i: u32) -> u16 {
        let (mut used, mut advance, mut eob) = (0u32, 0u32, 0u32);
        while used < MULTI && advance < 64 {
            let avail = MULTI - used;
            let w = i & ((1 << avail) - 1);
            let Some((l, sym)) = self.decode_window(w, avail) else {
                break;
            };
            let (r, s) = ((sym >> 4) as u32, (sym & 15) as u32);
            if l + s > avail {
                break;
            }
            used += l + s;
            if s == 0 && r != 15 {
                eob = 1;
                break;
            }
            advance += if s == 0 { 16 } else { r + 1 };
        }
        if used == 0 {
            0
        } else {
            (eob << 12 | advance << 5 | used) as u16
        }
    }

    /// Decode one symbol from the top of `b` (which holds at least 32 bits): (length, symbol),
    /// or `None` for a code not in the table (libjpeg warns and substitutes 0).
    #[inline(always)]
    fn symbol(&self, b: &Bits) -> Option<(u32, u8)> {
        let e = self.look[b.peek(LOOK) as usize];
        if e >> 8 != 0 {
            return Some(((e >> 8) as u32, e as u8));
        }
        self.symbol_slow(b.acc)
    }

    /// Codes longer than `LOOK` bits, at the top of `acc`.
    #[cold]
    #[inline(never)]
    fn symbol_slow(&self, acc: u64) -> Option<(u32, u8)> {
        for l in LOOK + 1..=16 {
            let code = (acc >> (64 - l)) as i32;
            if code <= self.maxcode[l as usize] {
                let i = code + self.valoffset[l as usize];
                return usize::try_from(i)
                    .ok()
                    .and_then(|i| self.vals.get(i))
                    .map(|&s| (l, s));
            }
        }
        None
    }
}

/// The DC fast-table entry of lookahead index `i` whose code (length `l`) has symbol `s`.
fn dc_entry(i: u32, l: u32, s: u8) -> u32 {
    let s = s as u32;
    if l + s > LOOK {
        return 0;
    }
    let x = (i >> (LOOK - l - s)) & ((1 << s) - 1);
    let value = extend(x as i32, s) as i16 as u16 as u32;
    value << 16 | 1 << 8 | (l + s)
}

/// The fast-table entry of lookahead index `i` whose code (length `l`) has symbol `sym`.
fn fast_entry(i: u32, l: u32, sym: u8) -> u32 {
    let (r, s) = ((sym >> 4) as u32, (sym & 15) as u32);
    if s == 0 {
        // ZRL skips 16 positions; any other run with no magnitude ends the block (jdhuff.c).
        let advance = if r == 15 { 16 } else { 64 };
        return advance << 8 | l;
    }
    if l + s > LOOK {
        return 0;
    }
    let x = (i >> (LOOK - l - s)) & ((1 << s) - 1);
    let value = extend(x as i32, s) as i16 as u16 as u32;
    value << 16 | (r + 1) << 8 | (l + s)
}

/// The entropy-coded bits of a scan, MSB first in a 64-bit buffer. At a marker (or the end
/// of the data) zero bits are supplied, as libjpeg does, and counted in `fake`: the caller
/// checks at each restart and at the end that none were consumed. Passed by value to the
/// functions that are not inlined, so that its fields stay in registers in the decode loops.
#[derive(Clone, Copy)]
struct Bits<'a> {
    d: &'a [u8],
    /// Next byte to load.
    pos: usize,
    acc: u64,
    /// Bits in `acc` (at most 63).
    n: u32,
    /// Zero bits supplied after a marker (they are the last `fake` of the `n`).
    fake: u32,
    /// `pos` is at a marker (or the end of the data): load no more.
    marker: bool,
}

/// Does `w` hold a 0xFF byte?
#[inline(always)]
fn has_ff(w: u64) -> bool {
    let x = !w;
    (x.wrapping_sub(0x0101_0101_0101_0101) & !x & 0x8080_8080_8080_8080) != 0
}

impl<'a> Bits<'a> {
    fn new(d: &'a [u8], pos: usize) -> Self {
        Bits {
            d,
            pos,
            acc: 0,
            n: 0,
            fake: 0,
            marker: false,
        }
    }

    #[inline(always)]
    fn peek(&self, k: u32) -> u32 {
        (self.acc >> (64 - k)) as u32
    }

    #[inline(always)]
    fn drop_bits(&mut self, k: u32) {
        self.acc <<= k;
        self.n -= k;
    }

    /// At least 32 bits in the buffer (the most one coefficient takes: code and magnitude).
    #[inline(always)]
    fn ensure(&mut self) {
        if self.n < 32 {
            self.refill();
        }
    }

    #[inline(always)]
    fn refill(&mut self) {
        if !self.marker {
            if let Some(w) = self.d.get(self.pos..self.pos + 8) {
                let w = u64::from_be_bytes(w.try_into().unwrap_or([0xFF; 8]));
                if !has_ff(w) {
                    // Bits past the whole bytes counted are the next bytes' own bits: loading
                    // them again later ORs the same values.
                    self.acc |= w >> self.n;
                    self.pos += ((63 - self.n) >> 3) as usize;
                    self.n |= 56;
                    return;
                }
            }
        }
        *self = self.refill_slow();
    }

    /// Byte by byte: `FF 00` is a stuffed 0xFF, `FF` and anything else is a marker.
    #[cold]
    #[inline(never)]
    fn refill_slow(mut self) -> Self {
        while self.n <= 55 {
            if self.marker {
                self.fake += 63 - self.n;
                self.n = 63;
                return self;
            }
            let byte = match self.d.get(self.pos) {
                Some(0xFF) => match self.d.get(self.pos + 1) {
                    Some(0) => {
                        self.pos += 1;
                        0xFF
                    }
                    _ => {
                        self.marker = true;
                        continue;
                    }
                },
                Some(&b) => b,
                None => {
                    self.marker = true;
                    continue;
                }
            };
            self.pos += 1;
            self.acc |= (byte as u64) << (56 - self.n);
            self.n += 8;
        }
        self
    }

    /// At the end of a restart interval or the scan: `Some(position of the marker)` when every
    /// bit decoded was real data and fewer than 8 bits (the padding) are left before a marker.
    fn finish(&mut self) -> Option<usize> {
        if !self.marker && self.n - self.fake.min(self.n) < 8 {
            *self = self.refill_slow();
        }
        if !self.marker || self.n < self.fake || self.n - self.fake >= 8 {
            return None;
        }
        Some(self.pos)
    }

    fn restart(&mut self, pos: usize) {
        *self = Bits::new(self.d, pos);
    }
}

/// The sample libjpeg's IDCTs write for a value `v` (`IDCT_range_limit` with `RANGE_MASK`):
/// `v + 128` clamped to 0..=255 for |v| < 512, wrapping like the table beyond.
#[inline(always)]
fn idct_limit(v: i32) -> u8 {
    let k = (v & 1023) as u32;
    if k < 128 {
        (k + 128) as u8
    } else if k < 512 {
        255
    } else if k < 896 {
        0
    } else {
        (k - 896) as u8
    }
}

#[inline(always)]
fn descale(x: i64, n: u32) -> i64 {
    (x + (1 << (n - 1))) >> n
}

/// `jpeg_idct_2x2` (jidctred.c, CONST_BITS 13, PASS1_BITS 2): a block's 2×2 samples, row-major.
fn idct_2x2(coef: &[i16; 64], q: &[u16; 64]) -> [u8; 4] {
    const C7: i64 = -5906; // -FIX_0_720959822
    const C5: i64 = 6967; // FIX_0_850430095
    const C3: i64 = -10426; // -FIX_1_272758580
    const C1: i64 = 29692; // FIX_3_624509785
    let mut ws = [0i32; 16];
    for col in [0usize, 1, 3, 5, 7] {
        let dq = |r: usize| coef[r * 8 + col] as i64 * q[r * 8 + col] as i64;
        if coef[8 + col] == 0 && coef[24 + col] == 0 && coef[40 + col] == 0 && coef[56 + col] == 0 {
            let dc = (dq(0) << 2) as i32;
            ws[col] = dc;
            ws[8 + col] = dc;
            continue;
        }
        let tmp10 = dq(0) << 15;
        let tmp0 = dq(7) * C7 + dq(5) * C5 + dq(3) * C3 + dq(1) * C1;
        ws[col] = descale(tmp10 + tmp0, 13) as i32;
        ws[8 + col] = descale(tmp10 - tmp0, 13) as i32;
    }
    let mut out = [0u8; 4];
    for row in 0..2 {
        let w = &ws[row * 8..row * 8 + 8];
        if w[1] == 0 && w[3] == 0 && w[5] == 0 && w[7] == 0 {
            let v = idct_limit(descale(w[0] as i64, 5) as i32);
            out[row * 2] = v;
            out[row * 2 + 1] = v;
            continue;
        }
        let tmp10 = (w[0] as i64) << 15;
        let tmp0 = w[7] as i64 * C7 + w[5] as i64 * C5 + w[3] as i64 * C3 + w[1] as i64 * C1;
        out[row * 2] = idct_limit(descale(tmp10 + tmp0, 20) as i32);
        out[row * 2 + 1] = idct_limit(descale(tmp10 - tmp0, 20) as i32);
    }
    out
}

/// A frame component, with what the decoder derives for it.
#[derive(Clone)]
struct Component {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
    dc: usize,
    ac: usize,
    /// Scaled IDCT size at 1/8 scale (jdmaster.c): 1 or 2.
    size: usize,
}

/// The headers up to the first SOS.
struct Header {
    width: usize,
    height: usize,
    comps: Vec<Component>,
    quant: [Option<[u16; 64]>; 4],
    dc: [Option<Huffman>; 4],
    ac: [Option<Huffman>; 4],
    restart: usize,
    /// First byte of the entropy-coded data.
    data: usize,
}

fn be16(b: &[u8], i: usize) -> Option<usize> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]) as usize)
}

/// Parse SOI .. SOS; `None` for anything this decoder does not replicate exactly.
fn parse(b: &[u8]) -> Option<Header> {
    if b.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut i = 2;
    let mut quant: [Option<[u16; 64]>; 4] = [None; 4];
    let mut dc: [Option<Huffman>; 4] = [None, None, None, None];
    let mut ac: [Option<Huffman>; 4] = [None, None, None, None];
    let mut restart = 0;
    let mut frame: Option<(usize, usize, Vec<Component>)> = None;
    loop {
        if *b.get(i)? != 0xFF {
            return None; // bytes between segments: libjpeg warns and skips them
        }
        while *b.get(i)? == 0xFF {
            i += 1;
        }
        let code = *b.get(i)?;
        i += 1;
        let len = be16(b, i)?;
        if len < 2 {
            return None;
        }
        let seg = b.get(i + 2..i + len)?;
        i += len;
        match code {
            0xE0..=0xED | 0xEF | 0xFE => {} // APPn (not APP14: Adobe), COM
            0xDB => {
                let mut s = seg;
                while !s.is_empty() {
                    let (pq, tq) = (s[0] >> 4, (s[0] & 15) as usize);
                    if pq != 0 || tq > 3 || s.len() < 65 {
                        return None;
                    }
                    let mut t = [0u16; 64];
                    for (k, &v) in s[1..65].iter().enumerate() {
                        t[NATURAL[k] as usize] = v as u16;
                    }
                    quant[tq] = Some(t);
                    s = &s[65..];
                }
            }
            0xC4 => {
                let mut s = seg;
                while !s.is_empty() {
                    let (tc, th) = (s[0] >> 4, (s[0] & 15) as usize);
                    let counts: &[u8; 16] = s.get(1..17)?.try_into().ok()?;
                    let total: usize = counts.iter().map(|&c| c as usize).sum();
                    let vals = s.get(17..17 + total)?;
                    if th > 3 || tc > 1 {
                        return None;
                    }
                    let t = Huffman::new(counts, vals, tc == 0)?;
                    if tc == 0 {
                        dc[th] = Some(t);
                    } else {
                        ac[th] = Some(t);
                    }
                    s = &s[17 + total..];
                }
            }
            0xDD => {
                if seg.len() != 2 {
                    return None;
                }
                restart = be16(seg, 0)?;
            }
            0xC0 | 0xC1 => {
                if frame.is_some() || seg.len() < 6 || seg[0] != 8 {
                    return None;
                }
                let (height, width, nf) = (be16(seg, 1)?, be16(seg, 3)?, seg[5] as usize);
                if seg.len() != 6 + 3 * nf || !(nf == 1 || nf == 3) {
                    return None;
                }
                if width == 0 || height == 0 || width > 65500 || height > 65500 {
                    return None;
                }
                let mut comps = Vec::with_capacity(nf);
                for c in seg[6..].chunks_exact(3) {
                    let (h, v) = ((c[1] >> 4) as usize, (c[1] & 15) as usize);
                    if !(1..=4).contains(&h) || !(1..=4).contains(&v) || c[2] > 3 {
                        return None;
                    }
                    if comps.iter().any(|p: &Component| p.id == c[0]) {
                        return None;
                    }
                    comps.push(Component {
                        id: c[0],
                        h,
                        v,
                        tq: c[2] as usize,
                        dc: 0,
                        ac: 0,
                        size: 1,
                    });
                }
                // Three components labelled R, G, B are RGB to libjpeg (without JFIF).
                if nf == 3 && comps.iter().map(|c| c.id).eq([82u8, 71, 66]) {
                    return None;
                }
                frame = Some((width, height, comps));
            }
            0xDA => {
                let (width, height, mut comps) = frame?;
                let ns = *seg.first()? as usize;
                if ns != comps.len() || seg.len() != 4 + 2 * ns {
                    return None;
                }
                for (k, c) in comps.iter_mut().enumerate() {
                    let (id, t) = (seg[1 + 2 * k], seg[2 + 2 * k]);
                    let (td, ta) = ((t >> 4) as usize, (t & 15) as usize);
                    if id != c.id || td > 3 || ta > 3 {
                        return None;
                    }
                    if dc[td].is_none() || ac[ta].is_none() || quant[c.tq].is_none() {
                        return None;
                    }
                    (c.dc, c.ac) = (td, ta);
                }
                if seg[1 + 2 * ns..] != [0, 63, 0] {
                    return None;
                }
                return Some(Header {
                    width,
                    height,
                    comps,
                    quant,
                    dc,
                    ac,
                    restart,
                    data: i,
                });
            }
            _ => return None, // other SOFs (progressive, arithmetic, lossless), DAC, DNL, ...
        }
    }
}

/// `jpeg_calc_output_dimensions` at scale 1/8: each component's IDCT size.
fn idct_size(max_h: usize, max_v: usize, c: &Component) -> usize {
    let mut s = 1;
    while s < 8 && max_h.is_multiple_of(c.h * s * 2) && max_v.is_multiple_of(c.v * s * 2) {
        s *= 2;
    }
    s
}

/// One component's samples after the IDCT (plus MCU padding).
struct Plane {
    stride: usize,
    samples: Vec<u8>,
}

/// Decode `bytes` at 1/8 scale into RGB8 exactly as libjpeg-turbo does (`libjpeg_scaled(bytes, 1)`
/// of [`crate::jpeg`]), or `None` for anything outside the cases this module replicates
/// (module doc); never panics.
pub fn decode_eighth(bytes: &[u8]) -> Option<RgbImage> {
    let mut hd = parse(bytes)?;
    let max_h = hd.comps.iter().map(|c| c.h).max()?;
    let max_v = hd.comps.iter().map(|c| c.v).max()?;
    let interleaved = hd.comps.len() > 1;
    if hd.comps.iter().map(|c| c.h * c.v).sum::<usize>() > 10 && interleaved {
        return None; // libjpeg: JERR_BAD_MCU_SIZE
    }
    for c in hd.comps.iter_mut() {
        c.size = if interleaved {
            idct_size(max_h, max_v, c)
        } else {
            1
        };
        if c.size > 2 || !max_h.is_multiple_of(c.h * c.size) || !max_v.is_multiple_of(c.v * c.size)
        {
            return None;
        }
    }
    let (w, h) = (hd.width, hd.height);
    // MCUs across and down, and each component's blocks per MCU.
    let (mcux, mcuy) = if interleaved {
        (w.div_ceil(8 * max_h), h.div_ceil(8 * max_v))
    } else {
        (w.div_ceil(8), h.div_ceil(8))
    };
    // Every block takes at least 2 bits (a DC code and an end-of-block code): data too short
    // for the frame runs out (libjpeg: truncated), so refuse before allocating for it.
    let blocks: usize = hd
        .comps
        .iter()
        .map(|c| if interleaved { c.h * c.v } else { 1 })
        .sum::<usize>()
        * mcux
        * mcuy;
    if blocks / 4 > bytes.len().saturating_sub(hd.data) {
        return None;
    }
    let mut planes: Vec<Plane> = hd
        .comps
        .iter()
        .map(|c| {
            let (bh, bv) = if interleaved { (c.h, c.v) } else { (1, 1) };
            let stride = mcux * bh * c.size;
            Plane {
                stride,
                samples: vec![0u8; stride * mcuy * bv * c.size],
            }
        })
        .collect();
    decode_scan(bytes, &hd, &mut planes, mcux, mcuy, interleaved)?;
    Some(to_rgb(&hd, &planes, max_h, max_v))
}

/// The scan's entropy-coded data into `planes`, then EOI; `None` on anything irregular.
fn decode_scan(
    bytes: &[u8],
    hd: &Header,
    planes: &mut [Plane],
    mcux: usize,
    mcuy: usize,
    interleaved: bool,
) -> Option<()> {
    struct Comp<'t> {
        dc: &'t Huffman,
        ac: &'t Huffman,
        q: &'t [u16; 64],
        bh: usize,
        bv: usize,
        size: usize,
    }
    let comps: Vec<Comp> = hd
        .comps
        .iter()
        .map(|c| {
            let (bh, bv) = if interleaved { (c.h, c.v) } else { (1, 1) };
            Some(Comp {
                dc: hd.dc[c.dc].as_ref()?,
                ac: hd.ac[c.ac].as_ref()?,
                q: hd.quant[c.tq].as_ref()?,
                bh,
                bv,
                size: c.size,
            })
        })
        .collect::<Option<_>>()?;
    let mut bits = Bits::new(bytes, hd.data);
    let mut pred = [0i32; 3];
    let mut bad = false;
    let mut todo = hd.restart;
    let mut next_rst = 0u8;
    let mut coef = [0i16; 64];
    for my in 0..mcuy {
        if bad {
            return None;
        }
        for mx in 0..mcux {
            if hd.restart > 0 {
                if todo == 0 {
                    let at = bits.finish()?;
                    if bad || bytes.get(at..at + 2)? != [0xFF, 0xD0 + next_rst] {
                        return None;
                    }
                    bits.restart(at + 2);
                    pred = [0; 3];
                    next_rst = (next_rst + 1) & 7;
                    todo = hd.restart;
                }
                todo -= 1;
            }
            for (ci, c) in comps.iter().enumerate() {
                let plane = &mut planes[ci];
                for by in 0..c.bv {
                    for bx in 0..c.bh {
                        // Each block decodes on a copy of the bit reader whose address never
                        // escapes, so that its fields stay in registers. `bits` itself stayed in
                        // memory (perf annotate), and reloading its buffer at every coefficient
                        // put a store-to-load round trip on the loop's critical path (decoding
                        // alone: 0.76 -> 0.72 of libjpeg-turbo's time, `examples/eighth_bench.rs`).
                        let mut b = bits;
                        {
                            let bits = &mut b;
                            // DC difference.
                            bits.ensure();
                            let e = c.dc.fast[bits.peek(LOOK) as usize];
                            let diff = if e != 0 {
                                bits.drop_bits(e & 31);
                                (e >> 16) as u16 as i16 as i32
                            } else {
                                let (after, diff) = dc_slow(*bits, c.dc, &mut bad);
                                *bits = after;
                                diff
                            };
                            pred[ci] = pred[ci].wrapping_add(diff);
                            let dc = pred[ci] as i16;
                            let row = (my * c.bv + by) * c.size;
                            let col = (mx * c.bh + bx) * c.size;
                            if c.size == 1 {
                                skip_ac(bits, c.ac, &mut bad);
                                let v = descale(dc as i64 * c.q[0] as i64, 3) as i32;
                                plane.samples[row * plane.stride + col] = idct_limit(v);
                            } else {
                                coef.fill(0);
                                coef[0] = dc;
                                decode_ac(bits, c.ac, &mut coef, &mut bad);
                                let px = idct_2x2(&coef, c.q);
                                let i = row * plane.stride + col;
                                plane.samples[i..i + 2].copy_from_slice(&px[..2]);
                                let i = i + plane.stride;
                                plane.samples[i..i + 2].copy_from_slice(&px[2..]);
                            }
                        }
                        bits = b;
                    }
                }
            }
        }
    }
    let at = bits.finish()?;
    if bad {
        return None;
    }
    // EOI, after any fill bytes.
    let mut i = at;
    while *bytes.get(i)? == 0xFF {
        i += 1;
    }
    (bytes[i] == 0xD9 && i > at).then_some(())
}

/// A DC difference whose code and magnitude take more than `LOOK` bits (or a bad code).
#[cold]
#[inline(never)]
fn dc_slow<'a>(mut bits: Bits<'a>, t: &Huffman, bad: &mut bool) -> (Bits<'a>, i32) {
    let Some((l, s)) = t.symbol(&bits) else {
        *bad = true;
        bits.drop_bits(1);
        return (bits, 0);
    };
    let s = s as u32;
    let x = (bits.peek(l + s) & ((1 << s) - 1)) as i32;
    bits.drop_bits(l + s);
    (bits, extend(x, s))
}

/// Skip a block's AC coefficients (jdhuff.c's loop without storing).
#[inline(always)]
fn skip_ac(bits: &mut Bits, t: &Huffman, bad: &mut bool) {
    let mut k = 1u32;
    while k < 64 {
        bits.ensure();
        // Several coefficients at once, unless they would run past position 63 (where
        // libjpeg's loop stops) or read an end-of-block that the loop would not.
        let e = t.multi[bits.peek(MULTI) as usize] as u32;
        let (advance, eob) = ((e >> 5) & 127, e >> 12);
        if e != 0 && k + advance + eob <= 64 {
            bits.drop_bits(e & 31);
            k += advance;
            if eob != 0 {
                return;
            }
            continue;
        }
        let e = t.fast[bits.peek(LOOK) as usize];
        if e != 0 {
            bits.drop_bits(e & 31);
            k += (e >> 8) & 127;
            continue;
        }
        let Some((l, sym)) = t.symbol(bits) else {
            *bad = true;
            return;
        };
        let (r, s) = ((sym >> 4) as u32, (sym & 15) as u32);
        bits.drop_bits(l + s);
        if s != 0 {
            k += r + 1;
        } else if r == 15 {
            k += 16;
        } else {
            return;
        }
    }
}

/// A block's AC coefficients into `coef` (natural order), as jdhuff.c stores them.
#[inline(always)]
fn decode_ac(bits: &mut Bits, t: &Huffman, coef: &mut [i16; 64], bad: &mut bool) {
    let mut k = 1usize;
    while k < 64 {
        bits.ensure();
        let e = t.fast[bits.peek(LOOK) as usize];
        if e != 0 {
            bits.drop_bits(e & 31);
            let adv = ((e >> 8) & 127) as usize;
            let value = (e >> 16) as u16 as i16;
            if value != 0 {
                coef[NATURAL[k + adv - 1] as usize] = value;
            }
            k += adv;
            continue;
        }
        let Some((l, sym)) = t.symbol(bits) else {
            *bad = true;
            return;
        };
        let (r, s) = ((sym >> 4) as usize, (sym & 15) as u32);
        if s != 0 {
            let x = (bits.peek(l + s) & ((1 << s) - 1)) as i32;
            bits.drop_bits(l + s);
            k += r;
            coef[NATURAL[k] as usize] = extend(x, s) as i16;
            k += 1;
        } else {
            bits.drop_bits(l);
            if r == 15 {
                k += 16;
            } else {
                return;
            }
        }
    }
}

/// `FIX(x)` of jdcolor.c (SCALEBITS 16).
fn fix(x: f64) -> i64 {
    (x * 65536.0 + 0.5) as i64
}

/// Upsample (box, jdsample.c) and convert (jdcolor.c) to RGB8 of `ceil(w/8)×ceil(h/8)`.
fn to_rgb(hd: &Header, planes: &[Plane], max_h: usize, max_v: usize) -> RgbImage {
    let (ow, oh) = (hd.width.div_ceil(8), hd.height.div_ceil(8));
    let mut out = vec![0u8; ow * oh * 3];
    let expand: Vec<(usize, usize)> = hd
        .comps
        .iter()
        .map(|c| {
            if hd.comps.len() == 1 {
                (1, 1)
            } else {
                (max_h / (c.h * c.size), max_v / (c.v * c.size))
            }
        })
        .collect();
    if hd.comps.len() == 1 {
        let p = &planes[0];
        for (y, row) in out.chunks_exact_mut(ow * 3).enumerate() {
            let src = &p.samples[y * p.stride..y * p.stride + ow];
            for (px, &v) in row.chunks_exact_mut(3).zip(src) {
                px.copy_from_slice(&[v, v, v]);
            }
        }
        return RgbImage::from_raw(ow as u32, oh as u32, out).unwrap_or_default();
    }
    let mut cr_r = [0i32; 256];
    let mut cb_b = [0i32; 256];
    let mut cr_g = [0i64; 256];
    let mut cb_g = [0i64; 256];
    for i in 0..256usize {
        let x = i as i64 - 128;
        cr_r[i] = ((fix(1.40200) * x + (1 << 15)) >> 16) as i32;
        cb_b[i] = ((fix(1.77200) * x + (1 << 15)) >> 16) as i32;
        cr_g[i] = -fix(0.71414) * x;
        cb_g[i] = -fix(0.34414) * x + (1 << 15);
    }
    let clamp = |v: i32| v.clamp(0, 255) as u8;
    let mut rows: [&[u8]; 3] = [&[], &[], &[]];
    for (y, row) in out.chunks_exact_mut(ow * 3).enumerate() {
        for (ci, p) in planes.iter().enumerate() {
            let sy = y / expand[ci].1;
            rows[ci] = &p.samples[sy * p.stride..(sy + 1) * p.stride];
        }
        let [ry, rb, rr] = rows;
        let (ey, eb, er) = (expand[0].0, expand[1].0, expand[2].0);
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            let yv = ry[x / ey] as i32;
            let cb = rb[x / eb] as usize;
            let cr = rr[x / er] as usize;
            px[0] = clamp(yv + cr_r[cr]);
            px[1] = clamp(yv + ((cb_g[cb] + cr_g[cr]) >> 16) as i32);
            px[2] = clamp(yv + cb_b[cb]);
        }
    }
    RgbImage::from_raw(ow as u32, oh as u32, out).unwrap_or_default()
}
