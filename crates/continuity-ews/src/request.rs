//! SOAP request bodies for the operations of the probe cycle.
//!
//! Bodies are written directly as text (no serializer): the set is small,
//! element order is fixed by the schema, and every builder here is checked
//! against Microsoft's schema in the tests (`tests/schema.rs`).

use std::{fmt, fmt::Write as _, str::FromStr};

use chrono::{DateTime, SecondsFormat, Utc};

use crate::error::EwsError;

/// SOAP 1.1 envelope namespace (`http`, not the `https` of many doc samples).
pub const SOAP_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// EWS types namespace.
pub const TYPES_NS: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
/// EWS messages namespace.
pub const MESSAGES_NS: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
/// Fault detail namespace (has no schema).
pub const ERRORS_NS: &str = "http://schemas.microsoft.com/exchange/services/2006/errors";

pub use continuity_core::arrival::{PROBE_HEADER, SUBJECT_PREFIX, probe_subject};

/// The `RequestServerVersion` sent with every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ServerVersion {
    /// Exchange 2007 SP1.
    Exchange2007Sp1,
    /// Exchange 2010.
    Exchange2010,
    /// Exchange 2010 SP1.
    Exchange2010Sp1,
    /// Exchange 2010 SP2 (the first with `DateTimePrecision`).
    Exchange2010Sp2,
    /// Exchange 2013.
    Exchange2013,
    /// Exchange 2013 SP1: the default; later servers, Exchange Online
    /// included, accept it.
    #[default]
    Exchange2013Sp1,
    /// Exchange 2016.
    Exchange2016,
}

impl ServerVersion {
    /// Every value, oldest first.
    pub const ALL: [ServerVersion; 7] = [
        ServerVersion::Exchange2007Sp1,
        ServerVersion::Exchange2010,
        ServerVersion::Exchange2010Sp1,
        ServerVersion::Exchange2010Sp2,
        ServerVersion::Exchange2013,
        ServerVersion::Exchange2013Sp1,
        ServerVersion::Exchange2016,
    ];

    /// The schema's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerVersion::Exchange2007Sp1 => "Exchange2007_SP1",
            ServerVersion::Exchange2010 => "Exchange2010",
            ServerVersion::Exchange2010Sp1 => "Exchange2010_SP1",
            ServerVersion::Exchange2010Sp2 => "Exchange2010_SP2",
            ServerVersion::Exchange2013 => "Exchange2013",
            ServerVersion::Exchange2013Sp1 => "Exchange2013_SP1",
            ServerVersion::Exchange2016 => "Exchange2016",
        }
    }

    /// Whether the server understands `DateTimePrecision` (2010 SP2 on).
    pub fn has_precision(self) -> bool {
        self >= ServerVersion::Exchange2010Sp2
    }
}

impl PartialOrd for ServerVersion {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ServerVersion {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let rank = |v: &ServerVersion| ServerVersion::ALL.iter().position(|x| x == v);
        rank(self).cmp(&rank(other))
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ServerVersion {
    type Err = EwsError;
    fn from_str(s: &str) -> Result<Self, EwsError> {
        ServerVersion::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| EwsError::InvalidConfig {
                field: "server_version",
                reason: format!(
                    "unknown RequestServerVersion {s:?}; expected one of {}",
                    ServerVersion::ALL.map(|v| v.as_str()).join(", ")
                ),
            })
    }
}

/// Appends `s` escaped for XML text and attribute values.
pub(crate) fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all are dropped, not sent.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            '\u{FFFE}' | '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
}

/// Per-request envelope settings.
#[derive(Clone, Copy, Debug)]
pub struct Envelope<'a> {
    /// `RequestServerVersion`.
    pub version: ServerVersion,
    /// Primary SMTP address of the mailbox to impersonate, if any.
    pub impersonate: Option<&'a str>,
}

impl<'a> Envelope<'a> {
    /// An envelope impersonating `mailbox`.
    pub fn impersonating(version: ServerVersion, mailbox: &'a str) -> Self {
        Envelope {
            version,
            impersonate: Some(mailbox),
        }
    }

    fn open(&self, out: &mut String, precision: bool) {
        out.push_str(r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap=""#);
        out.push_str(SOAP_NS);
        out.push_str(r#"" xmlns:t=""#);
        out.push_str(TYPES_NS);
        out.push_str(r#"" xmlns:m=""#);
        out.push_str(MESSAGES_NS);
        out.push_str(r#""><soap:Header><t:RequestServerVersion Version=""#);
        out.push_str(self.version.as_str());
        out.push_str(r#""/>"#);
        if let Some(mailbox) = self.impersonate {
            out.push_str("<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>");
            escape_into(out, mailbox);
            out.push_str("</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>");
        }
        // Bound for FindItem/GetItem only (services.wsdl), and 2010 SP2 on.
        if precision && self.version.has_precision() {
            out.push_str("<t:DateTimePrecision>Milliseconds</t:DateTimePrecision>");
        }
        out.push_str("</soap:Header><soap:Body>");
    }

    fn close(out: &mut String) {
        out.push_str("</soap:Body></soap:Envelope>");
    }
}

/// What `CreateItem` does with the sent message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Disposition {
    /// Send, keep no copy (the default: nothing to clean up).
    #[default]
    SendOnly,
    /// Send and keep a copy in Sent Items.
    SendAndSaveCopy,
}

/// A probe message to send with `CreateItem`.
#[derive(Clone, Copy, Debug)]
pub struct ProbeMessage<'a> {
    /// The probe id, carried in the subject and in [`PROBE_HEADER`].
    pub probe_id: &'a str,
    /// The recipient's address.
    pub to: &'a str,
    /// Send only, or send and save a copy.
    pub disposition: Disposition,
}

fn probe_header_uri(out: &mut String) {
    out.push_str(
        r#"<t:ExtendedFieldURI DistinguishedPropertySetId="InternetHeaders" PropertyName=""#,
    );
    out.push_str(PROBE_HEADER);
    out.push_str(r#"" PropertyType="String"/>"#);
}

/// `CreateItem` sending a probe message.
pub fn create_item(env: &Envelope<'_>, msg: &ProbeMessage<'_>) -> String {
    let mut out = String::with_capacity(1400);
    env.open(&mut out, false);
    match msg.disposition {
        Disposition::SendOnly => out.push_str(r#"<m:CreateItem MessageDisposition="SendOnly">"#),
        Disposition::SendAndSaveCopy => out.push_str(
            r#"<m:CreateItem MessageDisposition="SendAndSaveCopy"><m:SavedItemFolderId><t:DistinguishedFolderId Id="sentitems"/></m:SavedItemFolderId>"#,
        ),
    }
    // Schema order inside t:Message: Subject, Body, ExtendedProperty (ItemType), then ToRecipients (MessageType).
    out.push_str("<m:Items><t:Message><t:Subject>");
    escape_into(&mut out, &probe_subject(msg.probe_id));
    out.push_str(r#"</t:Subject><t:Body BodyType="Text">Continuity probe message; safe to delete.</t:Body><t:ExtendedProperty>"#);
    probe_header_uri(&mut out);
    out.push_str("<t:Value>");
    escape_into(&mut out, msg.probe_id);
    out.push_str("</t:Value></t:ExtendedProperty><t:ToRecipients><t:Mailbox><t:EmailAddress>");
    escape_into(&mut out, msg.to);
    out.push_str(
        "</t:EmailAddress></t:Mailbox></t:ToRecipients></t:Message></m:Items></m:CreateItem>",
    );
    Envelope::close(&mut out);
    out
}

/// A well-known folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Folder {
    /// The Inbox.
    Inbox,
    /// Junk E-mail.
    JunkEmail,
    /// Sent Items.
    SentItems,
}

impl Folder {
    /// The `DistinguishedFolderId` value.
    pub fn id(self) -> &'static str {
        match self {
            Folder::Inbox => "inbox",
            Folder::JunkEmail => "junkemail",
            Folder::SentItems => "sentitems",
        }
    }
}

/// A `FindItem` query for one probe.
#[derive(Clone, Copy, Debug)]
pub struct FindQuery<'a> {
    /// The probe id to look for (X-header value or subject token).
    pub probe_id: &'a str,
    /// Folders to search.
    pub folders: &'a [Folder],
    /// Paging offset.
    pub offset: u32,
    /// Page size (1..=1000; EWSFindCountLimit is 1000).
    pub page_size: u32,
    /// Bound the scan to items received after this time.
    pub received_after: Option<DateTime<Utc>>,
}

fn probe_match(out: &mut String, probe_id: &str) {
    out.push_str("<t:Or><t:IsEqualTo>");
    probe_header_uri(out);
    out.push_str(r#"<t:FieldURIOrConstant><t:Constant Value=""#);
    escape_into(out, probe_id);
    out.push_str(r#""/></t:FieldURIOrConstant></t:IsEqualTo><t:Contains ContainmentMode="Substring" ContainmentComparison="IgnoreCase"><t:FieldURI FieldURI="item:Subject"/><t:Constant Value=""#);
    escape_into(out, probe_id);
    out.push_str(r#""/></t:Contains></t:Or>"#);
}

/// `FindItem` with a restriction on the probe id, newest first, paged.
pub fn find_item(env: &Envelope<'_>, q: &FindQuery<'_>) -> String {
    let mut out = String::with_capacity(2000);
    env.open(&mut out, true);
    out.push_str(r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="item:Subject"/><t:FieldURI FieldURI="item:DateTimeReceived"/><t:FieldURI FieldURI="item:DateTimeSent"/>"#);
    probe_header_uri(&mut out);
    let _ = write!(
        out,
        r#"</t:AdditionalProperties></m:ItemShape><m:IndexedPageItemView MaxEntriesReturned="{}" Offset="{}" BasePoint="Beginning"/><m:Restriction>"#,
        q.page_size.clamp(1, 1000),
        q.offset
    );
    match q.received_after {
        Some(after) => {
            out.push_str(r#"<t:And><t:IsGreaterThan><t:FieldURI FieldURI="item:DateTimeReceived"/><t:FieldURIOrConstant><t:Constant Value=""#);
            out.push_str(&after.to_rfc3339_opts(SecondsFormat::Secs, true));
            out.push_str(r#""/></t:FieldURIOrConstant></t:IsGreaterThan>"#);
            probe_match(&mut out, q.probe_id);
            out.push_str("</t:And>");
        }
        None => probe_match(&mut out, q.probe_id),
    }
    out.push_str(r#"</m:Restriction><m:SortOrder><t:FieldOrder Order="Descending"><t:FieldURI FieldURI="item:DateTimeReceived"/></t:FieldOrder></m:SortOrder><m:ParentFolderIds>"#);
    for f in q.folders {
        let _ = write!(out, r#"<t:DistinguishedFolderId Id="{}"/>"#, f.id());
    }
    out.push_str("</m:ParentFolderIds></m:FindItem>");
    Envelope::close(&mut out);
    out
}

/// An item's id and change key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ItemId {
    /// `Id`.
    pub id: String,
    /// `ChangeKey`, if known.
    pub change_key: Option<String>,
}

fn item_ids(out: &mut String, ids: &[ItemId]) {
    out.push_str("<m:ItemIds>");
    for i in ids {
        out.push_str(r#"<t:ItemId Id=""#);
        escape_into(out, &i.id);
        if let Some(ck) = &i.change_key {
            out.push_str(r#"" ChangeKey=""#);
            escape_into(out, ck);
        }
        out.push_str(r#""/>"#);
    }
    out.push_str("</m:ItemIds>");
}

/// `GetItem` reading the timestamps and Internet headers of `ids`.
pub fn get_item(env: &Envelope<'_>, ids: &[ItemId]) -> String {
    let mut out = String::with_capacity(1200);
    env.open(&mut out, true);
    out.push_str(r#"<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="item:Subject"/><t:FieldURI FieldURI="item:DateTimeReceived"/><t:FieldURI FieldURI="item:DateTimeSent"/><t:FieldURI FieldURI="item:InternetMessageHeaders"/><t:FieldURI FieldURI="message:InternetMessageId"/>"#);
    probe_header_uri(&mut out);
    out.push_str("</t:AdditionalProperties></m:ItemShape>");
    item_ids(&mut out, ids);
    out.push_str("</m:GetItem>");
    Envelope::close(&mut out);
    out
}

/// How `DeleteItem` disposes of items.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeleteType {
    /// Gone for good (the default for probes).
    #[default]
    HardDelete,
    /// Into the dumpster.
    SoftDelete,
    /// Into Deleted Items.
    MoveToDeletedItems,
}

/// `DeleteItem` of `ids`.
pub fn delete_item(env: &Envelope<'_>, ids: &[ItemId], how: DeleteType) -> String {
    let mut out = String::with_capacity(700);
    env.open(&mut out, false);
    out.push_str(match how {
        DeleteType::HardDelete => r#"<m:DeleteItem DeleteType="HardDelete">"#,
        DeleteType::SoftDelete => r#"<m:DeleteItem DeleteType="SoftDelete">"#,
        DeleteType::MoveToDeletedItems => r#"<m:DeleteItem DeleteType="MoveToDeletedItems">"#,
    });
    item_ids(&mut out, ids);
    out.push_str("</m:DeleteItem>");
    Envelope::close(&mut out);
    out
}

/// `GetFolder` of `folder` (the connection check: it exercises credentials,
/// impersonation, the mailbox and the request version without side effects).
pub fn get_folder(env: &Envelope<'_>, folder: Folder) -> String {
    let mut out = String::with_capacity(700);
    env.open(&mut out, false);
    let _ = write!(
        out,
        r#"<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="{}"/></m:FolderIds></m:GetFolder>"#,
        folder.id()
    );
    Envelope::close(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        let mut s = String::new();
        escape_into(&mut s, "a<b>&\"'\u{1}c");
        assert_eq!(s, "a&lt;b&gt;&amp;&quot;&apos;c");
    }

    #[test]
    fn versions_parse_and_order() {
        for v in ServerVersion::ALL {
            assert_eq!(v.as_str().parse::<ServerVersion>().unwrap(), v);
        }
        assert!("Exchange2019".parse::<ServerVersion>().is_err());
        assert!(ServerVersion::Exchange2010Sp2.has_precision());
        assert!(!ServerVersion::Exchange2010Sp1.has_precision());
    }

    #[test]
    fn precision_only_on_reads() {
        let env = Envelope::impersonating(ServerVersion::default(), "a@example.org");
        let msg = ProbeMessage {
            probe_id: "p1",
            to: "b@example.net",
            disposition: Disposition::SendOnly,
        };
        assert!(!create_item(&env, &msg).contains("DateTimePrecision"));
        assert!(get_item(&env, &[]).contains("DateTimePrecision"));
    }
}
