//! Printing terms in Erlang syntax, as `io:format("~w")` would: `{error,{fault,data_abort}}`,
//! `[1,2,3]`, `<<"text">>`, `'EXIT'`, `<0.42.3>`, `#Ref<0.0.7>`.
//!
//! It writes straight into a `core::fmt::Write` and never allocates, and it walks the term
//! with a [`Walker`] instead of recursing, so a fault handler can print an exit reason of any
//! depth on whatever stack it has.

use core::fmt::{self, Write};

use super::block::{Cell, Event, Kind, Leaf, Walker};
use crate::msg::atom::write_atom_name;

pub(super) fn write_term(out: &mut dyn Write, term: Cell<'_>) -> fmt::Result {
    // A comma goes before anything that follows an element of the same container.
    let mut comma = false;
    for event in Walker::new(term) {
        if comma && !matches!(event, Event::Close(_)) {
            out.write_char(',')?;
        }
        match event {
            Event::Open(kind, _) => {
                out.write_str(if kind == Kind::Tuple { "{" } else { "[" })?;
                comma = false;
            }
            Event::Close(kind) => {
                out.write_str(if kind == Kind::Tuple { "}" } else { "]" })?;
                comma = true;
            }
            Event::Leaf(leaf) => {
                write_leaf(out, leaf)?;
                comma = true;
            }
        }
    }
    Ok(())
}

fn write_leaf(out: &mut dyn Write, leaf: Leaf<'_>) -> fmt::Result {
    match leaf {
        Leaf::Atom(a) => write_atom_name(out, a.name()),
        Leaf::Int(n) => write!(out, "{n}"),
        Leaf::Float(x) => write_float(out, x),
        Leaf::Pid(p) => write!(out, "{p}"),
        Leaf::Ref(r) => write!(out, "{r}"),
        Leaf::Binary(bytes) => write_binary(out, bytes),
    }
}

/// `<<"text">>` when every byte is printable ASCII, else the bytes in decimal.
pub(super) fn write_binary(out: &mut dyn Write, bytes: &[u8]) -> fmt::Result {
    out.write_str("<<")?;
    if !bytes.is_empty() && bytes.iter().all(|b| (0x20..=0x7e).contains(b)) {
        out.write_char('"')?;
        for &b in bytes {
            if b == b'"' || b == b'\\' {
                out.write_char('\\')?;
            }
            out.write_char(char::from(b))?;
        }
        out.write_char('"')?;
    } else {
        for (i, b) in bytes.iter().enumerate() {
            if i > 0 {
                out.write_char(',')?;
            }
            write!(out, "{b}")?;
        }
    }
    out.write_str(">>")
}

/// A float the way Erlang prints it: the shortest digits that read back as the same float,
/// always with a `.` (`1.0`, `0.1`, `-2.5`), and in exponent form (`1.0e10`, `1.0e-5`) when
/// that is shorter than writing the zeros out (Erlang's `io_lib_format:fwrite_g/1` rule).
/// Infinities and NaN cannot occur in Erlang; they print as `inf`, `-inf` and `nan`.
pub(super) fn write_float(out: &mut dyn Write, x: f64) -> fmt::Result {
    if x.is_nan() {
        return out.write_str("nan");
    }
    if x.is_infinite() {
        return out.write_str(if x < 0.0 { "-inf" } else { "inf" });
    }
    if x.is_sign_negative() {
        out.write_char('-')?;
    }
    if x == 0.0 {
        return out.write_str("0.0");
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "d[.ddd]e[-]x".
    let mut buf = Buf::new();
    write!(buf, "{:e}", x.abs())?;
    let text = buf.as_str();
    let (mantissa, exp) = text.split_once('e').ok_or(fmt::Error)?;
    let exp: i32 = exp.parse().map_err(|_| fmt::Error)?;
    let (lead, rest) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // All the significant digits, and where the point goes: value = 0.DIGITS * 10^place.
    let mut digits = Buf::new();
    digits.write_str(lead)?;
    digits.write_str(rest)?;
    let digits = digits.as_str();
    let len = digits.len() as i32;
    let place = exp + 1;

    // What the exponent form costs: "e" + the exponent, plus ".0" when there is one digit.
    let mut exp_text = Buf::new();
    write!(exp_text, "{}", place - 1)?;
    let exp_cost = exp_text.as_str().len() as i32 + 1 + if len == 1 { 2 } else { 1 };
    let zeros = |out: &mut dyn Write, n: i32| (0..n).try_for_each(|_| out.write_char('0'));

    if place <= 0 {
        if 2 - place <= exp_cost {
            out.write_str("0.")?;
            zeros(out, -place)?;
            return out.write_str(digits);
        }
    } else if place < len {
        out.write_str(&digits[..place as usize])?;
        out.write_char('.')?;
        return out.write_str(&digits[place as usize..]);
    } else if place - len + 2 <= exp_cost {
        out.write_str(digits)?;
        zeros(out, place - len)?;
        return out.write_str(".0");
    }
    out.write_str(&digits[..1])?;
    out.write_char('.')?;
    out.write_str(if len == 1 { "0" } else { &digits[1..] })?;
    out.write_char('e')?;
    out.write_str(exp_text.as_str())
}

/// A small stack buffer for formatting numbers without allocating. 32 bytes hold any `{:e}`
/// of an f64 (17 digits, a point, `e-324`).
struct Buf {
    bytes: [u8; 32],
    len: usize,
}

impl Buf {
    fn new() -> Self {
        Self {
            bytes: [0; 32],
            len: 0,
        }
    }

    fn as_str(&self) -> &str {
        // Only whole `str`s are ever appended, so this cannot fail.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl Write for Buf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.bytes
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;

    fn float(x: f64) -> String {
        let mut s = String::new();
        write_float(&mut s, x).unwrap();
        s
    }

    #[test]
    fn floats_print_like_erlang() {
        let cases = [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1.0e10, "1.0e10"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (100.0, "100.0"),
            (1000.0, "1.0e3"),
            (1234.0, "1234.0"),
            (123456.0, "123456.0"),
            (1.5e6, "1.5e6"),
            (0.01, "0.01"),
            (0.0001, "0.0001"),
            (0.00001, "1.0e-5"),
            (0.000123, "1.23e-4"),
            (6.02214, "6.02214"),
            (1.0e100, "1.0e100"),
            (1.7976931348623157e308, "1.7976931348623157e308"),
            (5e-324, "5.0e-324"),
            (12.5, "12.5"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
        ];
        for (x, want) in cases {
            assert_eq!(float(x), want, "{x:e}");
        }
    }

    #[test]
    fn printed_floats_read_back_exactly() {
        let mut x = 1.0e-300_f64;
        while x < 1.0e300 {
            for y in [x, x * 1.2345678901234567, -x / 3.0] {
                let s = float(y);
                assert!(s.contains('.'), "{s}");
                assert_eq!(s.parse::<f64>().unwrap(), y, "{s}");
            }
            x *= 7.3;
        }
    }
}
