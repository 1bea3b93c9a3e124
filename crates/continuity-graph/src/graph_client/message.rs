//! Messages as sent and found, and the JSON pages Graph lists them in.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::odata::MailFolder;

/// A message to send with `sendMail`.
#[derive(Clone, Copy, Debug)]
pub struct MailMessage<'a> {
    /// The one recipient.
    pub to: &'a str,
    /// The subject.
    pub subject: &'a str,
    /// The plain-text body.
    pub body: &'a str,
    /// Custom Internet headers (names must start with `x-`/`X-`; Graph refuses others).
    pub headers: &'a [(&'a str, &'a str)],
    /// Keep a copy in Sent Items (`saveToSentItems`).
    pub save_to_sent_items: bool,
}

/// A probe message found in a mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundMessage {
    /// Graph's message id.
    pub id: String,
    /// The subject.
    pub subject: Option<String>,
    /// `receivedDateTime`.
    pub received: Option<DateTime<Utc>>,
    /// The probe header's value among its Internet headers, if there.
    pub probe_header: Option<String>,
    /// The folder it was found in.
    pub folder: MailFolder,
    /// Found through the header's named property (`false`: by the subject,
    /// because the mailbox has not mapped the header yet, or a hop removed it).
    pub by_header: bool,
}

#[derive(Deserialize)]
pub(super) struct Page {
    #[serde(default)]
    pub(super) value: Vec<Message>,
    #[serde(rename = "@odata.nextLink")]
    pub(super) next_link: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Message {
    pub(super) id: String,
    pub(super) subject: Option<String>,
    #[serde(rename = "receivedDateTime")]
    pub(super) received: Option<DateTime<Utc>>,
    #[serde(rename = "internetMessageHeaders")]
    pub(super) headers: Option<Vec<Header>>,
}

#[derive(Deserialize)]
pub(super) struct Header {
    pub(super) name: String,
    pub(super) value: String,
}
