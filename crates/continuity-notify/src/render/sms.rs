//! SMS text: GSM-7 or UCS-2, segment counting, and a summary that shortens
//! around a link that is never cut.

use continuity_core::notify::AlertMessage;

/// How an SMS body is encoded on the air.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmsEncoding {
    /// The GSM 03.38 7-bit alphabet: 160 characters in one segment, 153 per segment when split.
    Gsm7,
    /// UCS-2 (UTF-16): 70 characters in one segment, 67 per segment when split.
    Ucs2,
}

impl SmsEncoding {
    /// Units (septets or UTF-16 code units) that fit in a single-segment message.
    pub fn single_segment(self) -> usize {
        match self {
            SmsEncoding::Gsm7 => 160,
            SmsEncoding::Ucs2 => 70,
        }
    }

    /// Units per segment of a concatenated (multi-segment) message.
    pub fn multi_segment(self) -> usize {
        match self {
            SmsEncoding::Gsm7 => 153,
            SmsEncoding::Ucs2 => 67,
        }
    }
}

/// A rendered SMS body with what it costs to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmsText {
    /// The text to send.
    pub body: String,
    /// The encoding a provider will use for it.
    pub encoding: SmsEncoding,
    /// Length in units of the encoding (septets for GSM-7, escapes counting 2).
    pub units: usize,
    /// Segments the provider will bill and send.
    pub segments: usize,
}

// The GSM 03.38 basic character set (one septet each).
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
// The extension table, sent as ESC + character (two septets each).
const GSM_EXTENDED: &str = "^{}\\[~]|€\u{c}";

/// Septets `c` takes in GSM-7, or `None` if GSM-7 cannot carry it.
fn gsm_septets(c: char) -> Option<usize> {
    if GSM_BASIC.contains(c) {
        Some(1)
    } else if GSM_EXTENDED.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// The encoding `text` needs and its length in that encoding's units.
pub fn measure(text: &str) -> (SmsEncoding, usize) {
    let gsm: Option<usize> = text.chars().map(gsm_septets).sum();
    match gsm {
        Some(n) => (SmsEncoding::Gsm7, n),
        None => (SmsEncoding::Ucs2, text.encode_utf16().count()),
    }
}

/// Segments a message of `units` takes in `encoding`.
pub fn segments(encoding: SmsEncoding, units: usize) -> usize {
    if units <= encoding.single_segment() {
        1
    } else {
        units.div_ceil(encoding.multi_segment())
    }
}

fn units_of(encoding: SmsEncoding, c: char) -> usize {
    match encoding {
        SmsEncoding::Gsm7 => gsm_septets(c).unwrap_or(1),
        SmsEncoding::Ucs2 => c.len_utf16(),
    }
}

/// A summary shorter than this is not worth sending: the text goes out in
/// full over several segments instead.
const MIN_SUMMARY: usize = 24;

/// Renders alerts as SMS text: `<summary>\n<link>`.
///
/// The link is always whole. When the text does not fit one segment, the
/// summary is shortened (at a word boundary, marked with `...`) so that it
/// does; when even a short summary cannot share one segment with the link,
/// the whole summary is kept and the message takes several segments. The
/// count is known before sending ([`SmsText::segments`]).
///
/// ```
/// use continuity_notify::render::{SmsEncoding, SmsRenderer};
/// let text = SmsRenderer::default().fit("ALERT ACME Corp: outbound p95 latency 42 min, threshold 30 min, 18 samples in the last 1 h (+1 more)", "https://c.example.net/c/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdEfGhIjKlMnOpQrStUvWxYz012");
/// assert_eq!(text.encoding, SmsEncoding::Gsm7);
/// assert_eq!(text.segments, 1);
/// assert!(text.body.ends_with("\nhttps://c.example.net/c/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdEfGhIjKlMnOpQrStUvWxYz012"));
/// assert!(text.body.starts_with("ALERT ACME Corp: outbound p95 latency"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct SmsRenderer {
    _private: (),
}

impl SmsRenderer {
    /// Renders `message`: its headline (which says raised, reminder or
    /// resolved) and its portal link. When the headline leaves room in the
    /// one segment, what is failing in the headline's direction follows it,
    /// as room allows: the failures by kind, then the last remote reply (cut
    /// to fit): `ALERT acme: outbound ...; 7 deferred; reply 421 4.3.2 ...`.
    /// It never costs a segment or shortens the headline.
    pub fn render(&self, message: &AlertMessage) -> SmsText {
        let headline = message.headline();
        let (headline, link) = (headline.trim(), message.link.as_str());
        let Some(mut best) = whole(headline, link) else {
            return self.fit(headline, link);
        };
        let shown = message
            .conditions
            .iter()
            .find(|c| c.newly_raised)
            .or_else(|| message.conditions.first())
            .map(|c| c.direction);
        let Some(f) = message.failing.iter().find(|f| Some(f.direction) == shown) else {
            return best;
        };
        let mut summary = headline.to_string();
        let counts = f.counts_text();
        if !counts.is_empty() {
            let with_counts = format!("{summary}; {counts}");
            match whole(&with_counts, link) {
                Some(t) => {
                    best = t;
                    summary = with_counts;
                }
                None => return best,
            }
        }
        if let Some(reply) = &f.last_reply {
            let prefix = format!("{summary}; reply ");
            if let Some(t) = whole(&format!("{prefix}{reply}"), link) {
                return t;
            }
            let (encoding, used) = measure(&format!("{prefix}\n{link}"));
            let room = encoding.single_segment().saturating_sub(used);
            if encoding == best.encoding && room >= MIN_REPLY {
                let cut = shorten(reply.as_str(), encoding, room);
                if let Some(t) = whole(&format!("{prefix}{cut}"), link) {
                    return t;
                }
            }
        }
        best
    }

    /// Fits `summary` and `link` as described on the type.
    pub fn fit(&self, summary: &str, link: &str) -> SmsText {
        let summary = summary.trim();
        let full = format!("{summary}\n{link}");
        let (encoding, units) = measure(&full);
        if units <= encoding.single_segment() {
            return text(full, encoding, units);
        }
        let (_, link_units) = measure_as(encoding, link);
        let budget = encoding.single_segment().saturating_sub(link_units + 1);
        if budget >= MIN_SUMMARY {
            let short = shorten(summary, encoding, budget);
            let body = format!("{short}\n{link}");
            let (enc, units) = measure(&body);
            return text(body, enc, units);
        }
        text(full, encoding, units)
    }
}

/// A cut reply shorter than this says too little to be worth its room.
const MIN_REPLY: usize = 16;

/// `summary` and `link` as one segment, if they fit whole.
fn whole(summary: &str, link: &str) -> Option<SmsText> {
    let body = format!("{summary}\n{link}");
    let (encoding, units) = measure(&body);
    (units <= encoding.single_segment()).then(|| text(body, encoding, units))
}

fn measure_as(encoding: SmsEncoding, s: &str) -> (SmsEncoding, usize) {
    (encoding, s.chars().map(|c| units_of(encoding, c)).sum())
}

fn text(body: String, encoding: SmsEncoding, units: usize) -> SmsText {
    SmsText {
        segments: segments(encoding, units),
        body,
        encoding,
        units,
    }
}

/// `summary` cut to at most `budget` units, ending in `...`, at the last word
/// boundary when there is one in the second half.
fn shorten(summary: &str, encoding: SmsEncoding, budget: usize) -> String {
    const ELLIPSIS: &str = "...";
    let room = budget.saturating_sub(ELLIPSIS.len());
    let mut used = 0;
    let mut end = 0;
    for (i, c) in summary.char_indices() {
        let u = units_of(encoding, c);
        if used + u > room {
            break;
        }
        used += u;
        end = i + c.len_utf8();
    }
    let mut cut = &summary[..end];
    if let Some(space) = cut.rfind(' ')
        && space >= cut.len() / 2
    {
        cut = &cut[..space];
    }
    let cut = cut.trim_end_matches([' ', ',', ':', ';', '-']);
    format!("{cut}{ELLIPSIS}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINK: &str = "https://continuity.example.net/c/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdEfGhIjKlMnOpQrStUvWxYz0";

    #[test]
    fn gsm_counts_escapes_twice_and_ucs2_counts_code_units() {
        assert_eq!(measure("abc"), (SmsEncoding::Gsm7, 3));
        assert_eq!(measure("a€[]"), (SmsEncoding::Gsm7, 7));
        assert_eq!(measure("Łódź"), (SmsEncoding::Ucs2, 4));
        assert_eq!(measure("ok 🚨"), (SmsEncoding::Ucs2, 5));
    }

    #[test]
    fn segment_boundaries() {
        assert_eq!(segments(SmsEncoding::Gsm7, 160), 1);
        assert_eq!(segments(SmsEncoding::Gsm7, 161), 2);
        assert_eq!(segments(SmsEncoding::Gsm7, 306), 2);
        assert_eq!(segments(SmsEncoding::Gsm7, 307), 3);
        assert_eq!(segments(SmsEncoding::Ucs2, 70), 1);
        assert_eq!(segments(SmsEncoding::Ucs2, 71), 2);
        assert_eq!(segments(SmsEncoding::Ucs2, 134), 2);
        assert_eq!(segments(SmsEncoding::Ucs2, 135), 3);
    }

    #[test]
    fn short_text_is_kept_whole() {
        let t = SmsRenderer::default().fit("RESOLVED acme: mail flow is healthy again", LINK);
        assert_eq!(
            t.body,
            format!("RESOLVED acme: mail flow is healthy again\n{LINK}")
        );
        assert_eq!(t.segments, 1);
    }

    #[test]
    fn long_summary_shortens_into_one_gsm_segment_and_keeps_the_link() {
        let summary = "ALERT ACME Corp: outbound p95 latency 42 min, threshold 30 min, 18 samples in the last 1 h (+1 more)";
        let t = SmsRenderer::default().fit(summary, LINK);
        assert_eq!(t.encoding, SmsEncoding::Gsm7);
        assert_eq!(t.segments, 1);
        assert!(t.units <= 160, "{}", t.units);
        assert!(t.body.ends_with(&format!("\n{LINK}")), "{}", t.body);
        let head = t.body.split('\n').next().unwrap();
        assert!(head.ends_with("..."), "{head}");
        assert!(summary.starts_with(head.trim_end_matches("...")), "{head}");
    }

    #[test]
    fn ucs2_summary_shortens_to_seventy_when_the_link_leaves_room() {
        let link = "https://c.example/c/XyZ12345";
        let summary = "ALERT Łódź Sp. z o.o.: inbound p95 latency 42 min, threshold 30 min";
        let t = SmsRenderer::default().fit(summary, link);
        assert_eq!(t.encoding, SmsEncoding::Ucs2);
        assert_eq!(t.segments, 1, "{t:?}");
        assert!(t.units <= 70);
        assert!(t.body.ends_with(link));
    }

    #[test]
    fn when_the_link_leaves_no_room_the_text_goes_whole_over_several_segments() {
        let summary = "ALERT Łódź Sp. z o.o.: inbound p95 latency 42 min, threshold 30 min";
        let t = SmsRenderer::default().fit(summary, LINK);
        assert_eq!(t.encoding, SmsEncoding::Ucs2);
        assert_eq!(t.body, format!("{summary}\n{LINK}"));
        assert_eq!(t.segments, segments(SmsEncoding::Ucs2, t.units));
        assert!(t.segments >= 3, "{t:?}");
    }
}
