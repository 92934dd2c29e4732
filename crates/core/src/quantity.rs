//! Resource quantities (`500m`, `1.5Gi`, `2e3`) as Kubernetes writes them
//! (`k8s.io/apimachinery/pkg/api/resource`).

/// The value of a quantity, approximately, or `None` when `s` is not one.
pub fn parse(s: &str) -> Option<f64> {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let number_end = unsigned.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return None;
    }
    let multiplier = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent => {
            let digits = exponent.strip_prefix(['e', 'E'])?;
            let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(digits);
            if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            10f64.powi(digits.parse::<i32>().ok()?)
        }
    };
    let value: f64 = number.parse().ok()?;
    let sign = if s.starts_with('-') { -1.0 } else { 1.0 };
    Some(sign * value * multiplier)
}

#[cfg(test)]
mod tests {
    #[test]
    fn quantities() {
        assert_eq!(super::parse("1Gi"), Some(1073741824.0));
        assert_eq!(super::parse("500m"), Some(0.5));
        assert_eq!(super::parse("1.5k"), Some(1500.0));
        assert_eq!(super::parse("-2e3"), Some(-2000.0));
        assert_eq!(super::parse("10"), Some(10.0));
        for bad in ["", "Gi", "1GiB", "1.2.3", "e3", "1e", "1 Gi"] {
            assert_eq!(super::parse(bad), None, "{bad}");
        }
    }
}
