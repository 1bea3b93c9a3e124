//! Hand-written HTML with one rule: text that is not a `&'static str` goes
//! through [`Html::text`], which escapes it. Nothing dynamic can reach the
//! page unescaped, because [`Html::raw`] only takes string literals.

use std::{fmt, fmt::Write as _, sync::LazyLock};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256};

/// The page's only style sheet; the Content-Security-Policy allows exactly
/// this block (by hash) and nothing else: no scripts, no other styles.
const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;padding:1rem;line-height:1.4;max-width:40rem}\
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.5rem}h3{font-size:1rem;margin:.8rem 0 .2rem}\
ul{padding-left:1.2rem}li{margin:.3rem 0}\
.bad{color:#a00;font-weight:bold}.ok{color:#060}.nodata{color:#555;font-style:italic}\
.note{background:#fff4d6;padding:.6rem;border-radius:.3rem}\
a.button,button{display:inline-block;padding:.7rem 1rem;margin:.3rem .3rem .3rem 0;border:1px solid #335;border-radius:.3rem;background:#eef;color:#113;text-decoration:none;font-size:1rem}\
label{display:block;margin:.4rem 0}input[type=datetime-local]{font-size:1rem;padding:.3rem}\
small{color:#555}\
.chart{margin:.5rem 0 1rem}.chart svg{display:block;width:100%;height:auto;max-height:16rem}\
.chart figcaption{font-size:.85rem;color:#555}\
.chart .lat{fill:#4a78a8}.chart .over,.chart .fail{fill:#c02020}.chart .none{fill:#aaa}\
.chart .pending{fill:none;stroke:#4a78a8;stroke-width:1.2;stroke-dasharray:2 2}.chart .over-pending{stroke:#c02020}\
.chart .base{stroke:#888;stroke-width:.6}.chart .limit{stroke:#a00;stroke-width:1;stroke-dasharray:4 3}\
.chart .axis{font-size:9px;fill:#444}";

/// `Content-Security-Policy` for every response.
pub(crate) static CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; img-src 'none'; form-action 'self'; \
         base-uri 'none'; frame-ancestors 'none'"
    )
});

/// A page being written.
#[derive(Debug, Default)]
pub(crate) struct Html(String);

impl Html {
    pub(crate) fn new() -> Self {
        Html::default()
    }

    /// Markup written by this crate: literals only.
    pub(crate) fn raw(&mut self, markup: &'static str) -> &mut Self {
        self.0.push_str(markup);
        self
    }

    /// Anything else, escaped for text and for quoted attribute values.
    pub(crate) fn text(&mut self, value: impl fmt::Display) -> &mut Self {
        // Writing to a String cannot fail.
        let _ = write!(Escaper(&mut self.0), "{value}");
        self
    }

    /// The whole document around the body written so far.
    pub(crate) fn document(self, title: &str) -> String {
        let mut page = Html::new();
        page.raw("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">")
            .raw("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
            .raw("<meta name=\"referrer\" content=\"no-referrer\"><title>")
            .text(title)
            .raw(" · continuity portal</title><style>");
        page.0.push_str(STYLE);
        page.raw("</style></head><body><main>");
        page.0.push_str(&self.0);
        page.raw("</main></body></html>");
        page.0
    }
}

struct Escaper<'a>(&'a mut String);

impl fmt::Write for Escaper<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            match c {
                '&' => self.0.push_str("&amp;"),
                '<' => self.0.push_str("&lt;"),
                '>' => self.0.push_str("&gt;"),
                '"' => self.0.push_str("&quot;"),
                '\'' => self.0.push_str("&#39;"),
                c => self.0.push(c),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_raw_is_not() {
        let mut h = Html::new();
        h.raw("<p title=\"")
            .text("\"><script>alert('x')</script>&")
            .raw("\">");
        assert_eq!(
            h.0,
            "<p title=\"&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;\">"
        );
    }

    #[test]
    fn the_policy_allows_the_style_block_by_hash_and_no_script() {
        assert!(CSP.starts_with("default-src 'none'; style-src 'sha256-"));
        assert!(!CSP.contains("script-src"));
        assert!(!CSP.contains("unsafe"));
    }
}
