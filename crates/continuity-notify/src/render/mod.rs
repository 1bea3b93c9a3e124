//! Rendering alerts for each channel: SMS text that fits its segments, and
//! e-mail subject and bodies from a replaceable template. The webhook sends
//! the alert as JSON ([`webhook::WebhookPayload`](crate::webhook::WebhookPayload)).

mod email;
mod sms;

pub use email::{DefaultEmailTemplate, EmailContent, EmailTemplate, escape, kind_sentence};
pub use sms::{SmsEncoding, SmsRenderer, SmsText, measure, segments};
