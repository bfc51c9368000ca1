//! Edm types used by the entity table, and the one place where Edm values are parsed from and
//! formatted to their JSON wire form (DateTimeOffset in particular).
//!
//! DateTimeOffset values are kept as 100 ns UTC ticks since the Unix epoch (`i64`), the precision
//! Graph emits (7 fractional digits). The same integer is stored on every backend, so ordering and
//! comparison are exact everywhere (PostgreSQL `timestamptz` would drop the seventh digit).

use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// An Edm enum type (not flags): members with their underlying values, in declaration order.
#[derive(Debug)]
pub struct EnumType {
    pub name: &'static str,
    pub members: &'static [(&'static str, i64)],
    /// The evolvable-enum sentinel (`unknownFutureValue`), if the type declares one.
    pub sentinel: Option<&'static str>,
}

impl EnumType {
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", super::entity::NAMESPACE, self.name)
    }

    pub fn by_name(&self, name: &str) -> Option<(&'static str, i64)> {
        self.members.iter().copied().find(|(n, _)| *n == name)
    }

    pub fn by_value(&self, value: i64) -> Option<(&'static str, i64)> {
        self.members.iter().copied().find(|(_, v)| *v == value)
    }

    /// Resolves a wire value: a member name, or the underlying value written as a string ("4").
    pub fn resolve(&self, text: &str) -> Option<(&'static str, i64)> {
        self.by_name(text)
            .or_else(|| text.parse::<i64>().ok().and_then(|v| self.by_value(v)))
    }

    pub fn member_list(&self) -> String {
        self.members
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// An Edm complex type (CSDL XML §9). `open` types keep members they do not declare (§9.1.3).
#[derive(Debug)]
pub struct ComplexType {
    pub name: &'static str,
    pub open: bool,
    pub members: &'static [Member],
}

/// Complex types are catalog singletons: identity is the address.
impl PartialEq for ComplexType {
    fn eq(&self, other: &ComplexType) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for ComplexType {}

impl ComplexType {
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", super::entity::NAMESPACE, self.name)
    }

    pub fn member_index(&self, name: &str) -> Option<usize> {
        self.members.iter().position(|m| m.name == name)
    }

    /// Closed, and every member a single primitive or enum value: the shape stored as one column
    /// per member (`store::schema::Storage::Flattened`).
    pub fn is_flat(&self) -> bool {
        !self.open
            && self
                .members
                .iter()
                .all(|m| matches!(m.ty, EdmType::Primitive(_) | EdmType::Enum(_)))
    }
}

/// A member of a complex type.
#[derive(Debug)]
pub struct Member {
    pub name: &'static str,
    pub ty: EdmType,
    /// CSDL `Nullable` (default true): a non-null member must be present with a value.
    pub nullable: bool,
}

/// The primitive Edm types the family uses (the slice has no Guid, Date, Decimal or Binary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Primitive {
    String,
    Boolean,
    DateTimeOffset,
    Int32,
    Int64,
    Double,
}

impl Primitive {
    pub fn edm_name(self) -> &'static str {
        match self {
            Primitive::String => "Edm.String",
            Primitive::Boolean => "Edm.Boolean",
            Primitive::DateTimeOffset => "Edm.DateTimeOffset",
            Primitive::Int32 => "Edm.Int32",
            Primitive::Int64 => "Edm.Int64",
            Primitive::Double => "Edm.Double",
        }
    }
}

/// The type of a declared property or complex member.
#[derive(Debug, Clone, Copy)]
pub enum EdmType {
    Primitive(Primitive),
    Enum(&'static EnumType),
    Complex(&'static ComplexType),
    /// A collection; the element is a primitive, an enum or a complex type (never a collection).
    Collection(&'static EdmType),
}

impl EdmType {
    /// The type as CSDL spells it, e.g. `Collection(Edm.String)`.
    pub fn csdl_name(&self) -> String {
        match self {
            EdmType::Primitive(p) => p.edm_name().to_string(),
            EdmType::Enum(e) => e.qualified_name(),
            EdmType::Complex(c) => c.qualified_name(),
            EdmType::Collection(t) => format!("Collection({})", t.csdl_name()),
        }
    }

    /// The primitive element type of a collection of primitives.
    pub fn primitive_element(&self) -> Option<Primitive> {
        match self {
            EdmType::Collection(EdmType::Primitive(p)) => Some(*p),
            _ => None,
        }
    }
}

/// 100 ns ticks per second.
pub const TICKS_PER_SECOND: i64 = 10_000_000;

/// Why a DateTimeOffset text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateTimeError(pub &'static str);

/// Parses an ISO 8601 / RFC 3339 date-time with seconds, 0 or more fractional digits and a
/// mandatory `Z` or `±hh:mm` offset, into UTC ticks. Fractions beyond 7 digits must be zeros
/// would lose information silently; they are refused instead.
pub fn parse_datetime(text: &str) -> Result<i64, DateTimeError> {
    // A date alone is midnight UTC, as Microsoft's OData stack reads it (CONTRACT §3; the
    // MISP-to-Graph sample sends `"expirationDateTime": "2026-12-11"`).
    let b = text.as_bytes();
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' && text.is_ascii() {
        return parse_datetime(&format!("{text}T00:00:00Z"));
    }
    // Every valid form is ASCII; checking first keeps the byte slicing below on char boundaries.
    if !text.is_ascii() {
        return Err(DateTimeError(
            "expected yyyy-mm-ddThh:mm:ss[.fffffff] followed by Z or an offset ±hh:mm",
        ));
    }
    let bytes = text.as_bytes();
    // Shape check first, so the error says what is wrong rather than a parser's internals.
    if bytes.len() < 19 || bytes.get(10).is_none_or(|b| *b != b'T' && *b != b't') {
        return Err(DateTimeError(
            "expected yyyy-mm-ddThh:mm:ss[.fffffff] followed by Z or an offset ±hh:mm",
        ));
    }
    let (main, offset) = split_offset(text).ok_or(DateTimeError(
        "a time zone is required: end the value with Z or an offset such as +03:00",
    ))?;
    let (whole, fraction) = match main.find('.') {
        Some(dot) => (&main[..dot], Some(&main[dot + 1..])),
        None => (main, None),
    };
    let mut extra_ticks: i64 = 0;
    if let Some(fraction) = fraction {
        if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DateTimeError("the fractional seconds must be digits"));
        }
        let (kept, rest) = fraction.split_at(fraction.len().min(7));
        if rest.bytes().any(|b| b != b'0') {
            return Err(DateTimeError(
                "at most 7 fractional digits (100 ns precision) are supported",
            ));
        }
        let mut padded = kept.to_string();
        while padded.len() < 7 {
            padded.push('0');
        }
        extra_ticks = padded.parse().map_err(|_| DateTimeError("bad fraction"))?;
    }
    // RFC 3339 parsing of the whole-second part with a Z gives us validated calendar fields.
    let base = format!("{whole}Z");
    let parsed = PrimitiveDateTime::parse(
        &base,
        &time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z"),
    )
    .or_else(|_| {
        PrimitiveDateTime::parse(
            &base,
            &time::macros::format_description!("[year]-[month]-[day]t[hour]:[minute]:[second]Z"),
        )
    })
    .map_err(|_| DateTimeError("not a valid calendar date and time"))?;
    let local = parsed.assume_offset(offset);
    let seconds = local.unix_timestamp();
    seconds
        .checked_mul(TICKS_PER_SECOND)
        .and_then(|t| t.checked_add(extra_ticks))
        .ok_or(DateTimeError("out of range"))
}

fn split_offset(text: &str) -> Option<(&str, UtcOffset)> {
    if let Some(main) = text.strip_suffix('Z').or_else(|| text.strip_suffix('z')) {
        return Some((main, UtcOffset::UTC));
    }
    if text.len() < 6 {
        return None;
    }
    let (main, off) = text.split_at(text.len() - 6);
    let b = off.as_bytes();
    let sign = match b[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    if b[3] != b':' || !off[1..3].bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if !off[4..6].bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let hours: i8 = off[1..3].parse().ok()?;
    let minutes: i8 = off[4..6].parse().ok()?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    // A main part that still has a T-time with seconds is required; the offset must follow seconds.
    if main.len() < 19 {
        return None;
    }
    UtcOffset::from_hms(sign * hours, sign * minutes, 0)
        .ok()
        .map(|o| (main, o))
}

/// Formats UTC ticks as Graph does: `2016-12-31T21:00:46.1697867Z`, trailing fractional zeros
/// trimmed (no fraction at all for whole seconds).
pub fn format_datetime(ticks: i64) -> String {
    DateTimeText::new(ticks).as_str().to_owned()
}

/// [`format_datetime`]'s text on the stack: serializing a timestamp allocates nothing (it is on
/// the path of every entity in every response). At most `YYYY-MM-DDTHH:MM:SS.fffffffZ`, 28
/// bytes; a year outside 0000–9999 (not a valid Edm.DateTimeOffset in Graph's wire form, but
/// representable in ticks) is written with its sign and more digits, as `format!` would.
pub struct DateTimeText {
    buf: [u8; 40],
    len: usize,
}

impl DateTimeText {
    pub fn new(ticks: i64) -> DateTimeText {
        let seconds = ticks.div_euclid(TICKS_PER_SECOND);
        let frac = ticks.rem_euclid(TICKS_PER_SECOND);
        let dt = OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let (year, month, day) = dt.to_calendar_date();
        let (hour, minute, second) = dt.to_hms();
        let mut t = DateTimeText {
            buf: [0; 40],
            len: 0,
        };
        if (0..=9999).contains(&year) {
            t.digits(year as u32, 4);
        } else {
            use std::io::Write;
            let mut w = &mut t.buf[..];
            // Cannot fail: an i32 and its sign fit in 12 bytes.
            let _ = write!(w, "{year:04}");
            t.len = 40 - w.len();
        }
        t.push(b'-');
        t.digits(u32::from(u8::from(month)), 2);
        t.push(b'-');
        t.digits(u32::from(day), 2);
        t.push(b'T');
        t.digits(u32::from(hour), 2);
        t.push(b':');
        t.digits(u32::from(minute), 2);
        t.push(b':');
        t.digits(u32::from(second), 2);
        if frac != 0 {
            t.push(b'.');
            let mut f = frac as u32;
            let mut width = 7;
            while f.is_multiple_of(10) {
                f /= 10;
                width -= 1;
            }
            t.digits(f, width);
        }
        t.push(b'Z');
        t
    }

    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    /// `n` in exactly `width` decimal digits (zero-padded; `n` is known to fit).
    fn digits(&mut self, mut n: u32, width: usize) {
        for i in (0..width).rev() {
            self.buf[self.len + i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        self.len += width;
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits and separators are ever written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

/// The current time as UTC ticks.
pub fn now_ticks() -> i64 {
    let now = OffsetDateTime::now_utc();
    let nanos = now.unix_timestamp_nanos();
    (nanos / 100) as i64
}

/// [`now_ticks`], but strictly increasing within the process: every write takes one, so the
/// entity version it stamps (the basis of ETags) never repeats, not even for a delete and a
/// re-create of the same id within one clock tick.
pub fn unique_ticks() -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = now_ticks();
    let prev = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last.saturating_add(1)))
        })
        .unwrap_or(now);
    now.max(prev.saturating_add(1))
}

/// Graph's `innerError.date` form: UTC, no offset, no fraction.
pub fn format_error_date(ticks: i64) -> String {
    let s = format_datetime(ticks - ticks.rem_euclid(TICKS_PER_SECOND));
    s.trim_end_matches('Z').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(input: &str) -> String {
        format_datetime(parse_datetime(input).unwrap())
    }

    /// The `format!` form `DateTimeText` replaced, kept as the reference it must agree with.
    fn reference_format(ticks: i64) -> String {
        let seconds = ticks.div_euclid(TICKS_PER_SECOND);
        let frac = ticks.rem_euclid(TICKS_PER_SECOND);
        let dt = OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let mut out = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        );
        if frac != 0 {
            out.push('.');
            out.push_str(format!("{frac:07}").trim_end_matches('0'));
        }
        out.push('Z');
        out
    }

    #[test]
    fn stack_formatting_agrees_with_the_format_reference() {
        let mut rng = fastrand::Rng::with_seed(13);
        let year = 365 * 24 * 3600 * TICKS_PER_SECOND;
        let mut cases = vec![0, 1, -1, 10, 9_999_999, 10_000_000, i64::MAX, i64::MIN];
        cases.extend((0..20_000).map(|_| rng.i64(-2_000 * year..8_000 * year)));
        cases.extend((0..2_000).map(|_| rng.i64(..)));
        // Whole seconds and fractions with trailing zeros of every length.
        cases.extend(
            (0..2_000).map(|i| rng.i64(0..60 * year) / 10i64.pow(i % 8) * 10i64.pow(i % 8)),
        );
        for t in cases {
            assert_eq!(
                DateTimeText::new(t).as_str(),
                reference_format(t),
                "ticks {t}"
            );
        }
    }

    #[test]
    fn a_date_alone_is_midnight_utc() {
        assert_eq!(rt("2026-12-11"), "2026-12-11T00:00:00Z");
        assert!(parse_datetime("2026-13-11").is_err());
        assert!(parse_datetime("2026-12-1").is_err());
        assert!(
            parse_datetime("2026-12-11T10:00:00").is_err(),
            "a time needs an offset"
        );
    }

    #[test]
    fn normalises_offsets_to_utc_with_seven_digits() {
        assert_eq!(
            rt("2017-01-01T00:00:46.1697867+03:00"),
            "2016-12-31T21:00:46.1697867Z"
        );
        assert_eq!(
            rt("2016-12-31T23:58:46.8102575+03:00"),
            "2016-12-31T20:58:46.8102575Z"
        );
        assert_eq!(rt("2020-02-29T12:00:00-05:30"), "2020-02-29T17:30:00Z");
    }

    #[test]
    fn trims_trailing_zeros_and_accepts_any_fraction_length() {
        assert_eq!(rt("2021-05-06T07:08:09Z"), "2021-05-06T07:08:09Z");
        assert_eq!(rt("2021-05-06T07:08:09.5Z"), "2021-05-06T07:08:09.5Z");
        assert_eq!(rt("2021-05-06T07:08:09.120Z"), "2021-05-06T07:08:09.12Z");
        assert_eq!(rt("2021-05-06T07:08:09.0000000Z"), "2021-05-06T07:08:09Z");
        assert_eq!(rt("2021-05-06T07:08:09.000000000Z"), "2021-05-06T07:08:09Z");
        assert_eq!(rt("2021-05-06t07:08:09z"), "2021-05-06T07:08:09Z");
    }

    #[test]
    fn refuses_bad_shapes() {
        for bad in [
            "",
            "2021-05-06T07:08Z",
            "2021-05-06T07:08:09",
            "2021-05-06T07:08:09.Z",
            "2021-05-06T07:08:09.12a4Z",
            "2021-05-06T07:08:09.12345678Z",
            "2021-02-30T07:08:09Z",
            "2021-13-01T07:08:09Z",
            "2021-05-06T24:08:09Z",
            "2021-05-06T07:08:09+3:00",
            "2021-05-06T07:08:09+24:00",
            "2021-05-06 07:08:09Z",
            "not a date at all, really",
            // Multi-byte characters where the offset or fraction is sliced out.
            "2021-05-06T07:08:09€abcd",
            "2021-05-06T07:08:09x€abc",
            "2021-05-06T07:08:09.€Z",
            "2021-05-06T07:08:09+0€:0",
            "2021-05-06T07:08:0€Z",
        ] {
            assert!(parse_datetime(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn dates_before_the_epoch_and_far_ahead_round_trip() {
        assert_eq!(rt("1601-01-01T00:00:00Z"), "1601-01-01T00:00:00Z");
        assert_eq!(
            rt("1969-12-31T23:59:59.9999999Z"),
            "1969-12-31T23:59:59.9999999Z"
        );
        assert_eq!(
            rt("9999-12-31T23:59:59.9999999Z"),
            "9999-12-31T23:59:59.9999999Z"
        );
        assert!(parse_datetime("1969-12-31T23:59:59.9999999Z").unwrap() < 0);
    }

    #[test]
    fn error_date_has_no_offset_or_fraction() {
        let t = parse_datetime("2026-11-25T10:00:00.123Z").unwrap();
        assert_eq!(format_error_date(t), "2026-11-25T10:00:00");
    }
}
