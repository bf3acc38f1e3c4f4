//! Byte sizes on the command line: parsing "64M"-style arguments with checked
//! arithmetic, and formatting sizes for people.

/// Parse a byte count: decimal digits, then an optional unit K, M, G or T
/// (powers of 1024), then an optional "iB" or "B"; case-insensitive.
/// "4096", "64M", "64MiB", "16g", "512B" are accepted; "", "-1", "12X",
/// "1.5G" and values past `u64::MAX` are not.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(if text.is_empty() {
            "empty size (expected a number such as 4096, 64M or 16G)".to_string()
        } else {
            format!("'{text}' is not a size (expected a number such as 4096, 64M or 16G)")
        });
    }
    let shift = unit_shift(suffix)
        .ok_or_else(|| format!("unknown unit '{suffix}' in '{text}' (use K, M, G or T, optionally followed by iB or B)"))?;
    let too_large = || format!("'{text}' is too large");
    let value: u64 = digits.parse().map_err(|_| too_large())?;
    value.checked_mul(1u64 << shift).ok_or_else(too_large)
}

/// The binary shift a unit suffix stands for, if it is one we accept.
fn unit_shift(suffix: &str) -> Option<u32> {
    let lower = suffix.to_ascii_lowercase();
    let (unit, rest) = match lower.chars().next() {
        Some(c @ ('k' | 'm' | 'g' | 't')) => (Some(c), &lower[1..]),
        _ => (None, lower.as_str()),
    };
    let shift = match unit {
        None => 0,
        Some('k') => 10,
        Some('m') => 20,
        Some('g') => 30,
        Some(_) => 40,
    };
    match (unit, rest) {
        (_, "") | (_, "b") => Some(shift),
        (Some(_), "ib") => Some(shift),
        _ => None,
    }
}

/// Parse a pool block size: a size that is a power of two from 4K to 1M.
pub fn parse_block_size(text: &str) -> Result<u32, String> {
    let size = parse_size(text)?;
    if !size.is_power_of_two() || !(4096..=1 << 20).contains(&size) {
        return Err(format!("{size} bytes is not a power of two from 4K to 1M"));
    }
    u32::try_from(size).map_err(|_| format!("{size} bytes is too large"))
}

/// A size for people: exact bytes below 1 KiB, otherwise the largest binary
/// unit, with one decimal when the value is not whole ("64 MiB", "1.5 GiB").
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut unit = 0;
    while unit + 1 < UNITS.len() && bytes >> (10 * (unit + 2)) > 0 {
        unit += 1;
    }
    let scale = 1u128 << (10 * (unit + 1));
    let bytes = bytes as u128;
    if bytes.is_multiple_of(scale) {
        return format!("{} {}", bytes / scale, UNITS[unit]);
    }
    // Tenths, rounded half up, in integer arithmetic.
    let tenths = (bytes * 10 + scale / 2) / scale;
    if tenths.is_multiple_of(10) {
        return format!("{} {}", tenths / 10, UNITS[unit]);
    }
    format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_units_and_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64mib"), Ok(64 << 20));
        assert_eq!(parse_size("64MB"), Ok(64 << 20));
        assert_eq!(parse_size("16G"), Ok(16 << 30));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("512b"), Ok(512));
    }

    #[test]
    fn rejects_malformed_and_overflowing() {
        for bad in [
            "", "-1", "12X", "K", "M", "1.5G", " 1", "1 ", "1iB", "1KB2", "1KK", "+1", "0x10",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(parse_size("18446744073709551615").is_ok());
        assert!(parse_size("18446744073709551616").is_err());
        assert!(parse_size("99999999999999999999999").is_err());
        assert!(parse_size("16777216T").is_err());
        assert!(parse_size("17179869184G").is_err());
    }

    #[test]
    fn block_sizes() {
        assert_eq!(parse_block_size("4K"), Ok(4096));
        assert_eq!(parse_block_size("64K"), Ok(65536));
        assert_eq!(parse_block_size("1M"), Ok(1 << 20));
        for bad in ["2K", "2M", "12K", "0", "3000", "x"] {
            assert!(parse_block_size(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn formats() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(1023), "1023 B");
        assert_eq!(format_size(4096), "4 KiB");
        assert_eq!(format_size(64 << 20), "64 MiB");
        assert_eq!(format_size(3 << 29), "1.5 GiB");
        assert_eq!(format_size(u64::MAX), "16 EiB");
    }
}
