//! Integration tests of the notifiers against local providers: an HTTP
//! stand-in for Twilio, a webhook receiver, and a real SMTP server
//! (Python's aiosmtpd) on loopback.

mod channel_down;
mod common;
mod delivery;
mod failing;
mod sms;
mod smtp;
mod twilio;
mod webhook;
