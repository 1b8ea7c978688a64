//! The kernel command line (`/chosen/bootargs`): space-separated `key=value` pairs and bare
//! flags. One image serves many purposes (demo, each test suite, each QEMU configuration), so
//! xtask selects behaviour here rather than by building variants.

/// A parsed view over the command line; borrows the string from the device tree.
#[derive(Debug, Clone, Copy, Default)]
pub struct BootArgs<'a> {
    line: &'a str,
}

impl<'a> BootArgs<'a> {
    pub const fn new(line: &'a str) -> Self {
        Self { line }
    }

    pub fn as_str(&self) -> &'a str {
        self.line
    }

    /// The value of the last `key=value` for `key` (later words override earlier ones), or ""
    /// for a bare `key`.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.line
            .split_ascii_whitespace()
            .rev()
            .find_map(|word| match word.split_once('=') {
                Some((k, v)) if k == key => Some(v),
                None if word == key => Some(""),
                _ => None,
            })
    }

    /// True for a bare `key`, or `key=1|true|yes|on`.
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("" | "1" | "true" | "yes" | "on"))
    }

    /// A number in decimal or `0x` hexadecimal; `Err` carries the offending text.
    pub fn number(&self, key: &str) -> Result<Option<u64>, &'a str> {
        match self.get(key) {
            None => Ok(None),
            Some(text) => parse_number(text).map(Some).ok_or(text),
        }
    }
}

/// Parses `123`, `0x7b` or `1_000`.
pub fn parse_number(text: &str) -> Option<u64> {
    let mut digits = heapless::String::<32>::new();
    for c in text.chars().filter(|&c| c != '_') {
        digits.push(c).ok()?;
    }
    match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => digits.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_values_and_flags() {
        let args = BootArgs::new("semihosting=1 suite=boot  verbose skip=3 suite=timer");
        assert_eq!(args.get("suite"), Some("timer"), "later words override");
        assert_eq!(args.get("verbose"), Some(""));
        assert!(args.flag("verbose"));
        assert!(args.flag("semihosting"));
        assert!(!args.flag("icount"));
        assert_eq!(args.get("missing"), None);
        assert_eq!(args.number("skip"), Ok(Some(3)));
        assert_eq!(args.number("missing"), Ok(None));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("0x43000000"), Some(0x4300_0000));
        assert_eq!(parse_number("1_000"), Some(1000));
        assert_eq!(parse_number("12x"), None);
        assert_eq!(parse_number(""), None);
        let args = BootArgs::new("tick_hz=fast");
        assert_eq!(args.number("tick_hz"), Err("fast"));
    }
}
