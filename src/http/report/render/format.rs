//! Figures as the page writes them: thousands separated by commas, a sensible number of
//! decimals per unit, UTC times.

pub(super) fn time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

pub(super) fn duration(seconds: f64) -> String {
    if seconds < 60.0 {
        return format!("{} s", number(seconds, 1));
    }
    let whole = seconds.round() as i64;
    let (hours, minutes, secs) = (whole / 3600, whole % 3600 / 60, whole % 60);
    if hours > 0 { format!("{hours} h {minutes} min {secs} s") } else { format!("{minutes} min {secs} s") }
}

/// `value` with `decimals` decimals and thousands separated by commas.
pub(super) fn number(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    let (whole, fraction) = text.split_once('.').map_or((text.as_str(), None), |(w, f)| (w, Some(f)));
    let (sign, digits) = whole.strip_prefix('-').map_or(("", whole), |digits| ("-", digits));
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    match fraction {
        Some(fraction) => format!("{sign}{grouped}.{fraction}"),
        None => format!("{sign}{grouped}"),
    }
}

pub(super) fn count(value: i64) -> String {
    number(value as f64, 0)
}

pub(super) fn millis(value: f64) -> String {
    number(value, if value < 10.0 { 2 } else { 1 })
}

pub(super) fn percent(value: f64) -> String {
    format!("{} %", number(value, 2))
}

pub(super) fn bytes(value: i64) -> String {
    let value = value as f64;
    match value {
        v if v >= 1e9 => format!("{} GB", number(v / 1e9, 2)),
        v if v >= 1e6 => format!("{} MB", number(v / 1e6, 2)),
        v if v >= 1e3 => format!("{} kB", number(v / 1e3, 1)),
        v => format!("{} B", number(v, 0)),
    }
}
