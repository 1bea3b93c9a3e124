//! A small namespace-resolved element tree for the test server's reading of
//! requests (deliberately independent of the crate's response parser).

use quick_xml::{events::Event, name::ResolveResult, reader::NsReader};

/// An element: namespace URI, local name, attributes (local name → value), children, text.
#[derive(Debug, Clone, Default)]
pub struct El {
    pub ns: String,
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<El>,
    pub text: String,
}

pub const SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const T: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
pub const M: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";

impl El {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn child(&self, ns: &str, name: &str) -> Option<&El> {
        self.children.iter().find(|c| c.ns == ns && c.name == name)
    }
    pub fn all<'a>(&'a self, ns: &'a str, name: &'a str) -> impl Iterator<Item = &'a El> + 'a {
        self.children
            .iter()
            .filter(move |c| c.ns == ns && c.name == name)
    }
    pub fn path(&self, steps: &[(&str, &str)]) -> Option<&El> {
        let mut cur = self;
        for (ns, name) in steps {
            cur = cur.child(ns, name)?;
        }
        Some(cur)
    }
}

pub fn parse(xml: &str) -> Result<El, String> {
    let mut r = NsReader::from_str(xml);
    r.config_mut().expand_empty_elements = true;
    let mut stack: Vec<El> = Vec::new();
    loop {
        let (res, ev) = r.read_resolved_event().map_err(|e| e.to_string())?;
        let ns = match res {
            ResolveResult::Bound(n) => n.into_inner().to_owned(),
            _ => String::new(),
        };
        match ev {
            Event::Start(e) => {
                let mut el = El {
                    ns,
                    name: e.local_name().into_inner().to_owned(),
                    ..Default::default()
                };
                for a in e.attributes() {
                    let a = a.map_err(|e| e.to_string())?;
                    let key = a.key.local_name().into_inner().to_owned();
                    if a.key.into_inner().starts_with("xmlns") {
                        continue;
                    }
                    let v = a
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|e| e.to_string())?;
                    el.attrs.push((key, v.into_owned()));
                }
                stack.push(el);
            }
            Event::End(_) => {
                let el = stack.pop().ok_or("unbalanced")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => return Ok(el),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(g) => {
                if let Some(top) = stack.last_mut() {
                    let s = match g.resolve_char_ref().map_err(|e| e.to_string())? {
                        Some(c) => c.to_string(),
                        None => match &*g.into_inner() {
                            "amp" => "&".into(),
                            "lt" => "<".into(),
                            "gt" => ">".into(),
                            "quot" => "\"".into(),
                            "apos" => "'".into(),
                            o => return Err(format!("entity {o}")),
                        },
                    };
                    top.text.push_str(&s);
                }
            }
            Event::Eof => return Err("no root".into()),
            _ => {}
        }
    }
}

/// Escapes text for the server's answers.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
