//! NTLMv2 messages for HTTP authentication (MS-NLMP), built with the
//! `ntlmclient` crate. The handshake itself (negotiate → challenge →
//! authenticate over one kept-alive connection) is in the client.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use ntlmclient::{ChallengeMessage, Credentials, Flags, Message, NegotiateMessage, TargetInfoType};

use crate::error::EwsError;

fn flags() -> Flags {
    Flags::NEGOTIATE_UNICODE
        | Flags::REQUEST_TARGET
        | Flags::NEGOTIATE_NTLM
        | Flags::NEGOTIATE_ALWAYS_SIGN
        | Flags::NEGOTIATE_NTLM2_KEY
        | Flags::NEGOTIATE_TARGET_INFO
        | Flags::NEGOTIATE_128BIT
}

fn bad(reason: String) -> EwsError {
    EwsError::Malformed {
        status: 401,
        reason: format!("NTLM: {reason}"),
    }
}

/// The NEGOTIATE message, base64, for `Authorization: NTLM …`.
pub(crate) fn negotiate(workstation: &str) -> Result<String, EwsError> {
    let msg = Message::Negotiate(NegotiateMessage {
        flags: flags() | Flags::NEGOTIATE_WORKSTATION_SUPPLIED,
        supplied_domain: String::new(),
        supplied_workstation: workstation.to_owned(),
        os_version: Default::default(),
    });
    let bytes = msg
        .to_bytes()
        .map_err(|e| bad(format!("encoding NEGOTIATE: {e:?}")))?;
    Ok(STANDARD.encode(bytes))
}

/// The CHALLENGE from a `WWW-Authenticate: NTLM <base64>` value.
pub(crate) fn parse_challenge(header_value: &str) -> Option<Result<ChallengeMessage, EwsError>> {
    let b64 = header_value.trim().strip_prefix("NTLM ")?.trim();
    Some((|| {
        let bytes = STANDARD
            .decode(b64)
            .map_err(|e| bad(format!("challenge is not base64: {e}")))?;
        match Message::try_from(bytes.as_slice()) {
            Ok(Message::Challenge(c)) => Ok(c),
            Ok(other) => Err(bad(format!(
                "expected CHALLENGE, got message type {}",
                other.message_number()
            ))),
            Err(e) => Err(bad(format!("bad CHALLENGE: {e:?}"))),
        }
    })())
}

/// Windows FILETIME (100 ns since 1601-01-01) of `t`.
pub(crate) fn filetime(t: DateTime<Utc>) -> i64 {
    const UNIX_TO_1601_SECS: i64 = 11_644_473_600;
    (t.timestamp() + UNIX_TO_1601_SECS) * 10_000_000 + i64::from(t.timestamp_subsec_nanos() / 100)
}

/// The AUTHENTICATE message (NTLMv2), base64. The timestamp is the
/// server's (`MsvAvTimestamp`) when the challenge carries one, as MS-NLMP
/// asks, else `now`.
pub(crate) fn authenticate(
    challenge: &ChallengeMessage,
    domain: &str,
    username: &str,
    password: &str,
    workstation: &str,
    now: DateTime<Utc>,
) -> Result<String, EwsError> {
    let server_time = challenge
        .target_information
        .iter()
        .find(|e| matches!(e.entry_type, TargetInfoType::Timestamp))
        .and_then(|e| <[u8; 8]>::try_from(e.data.as_slice()).ok())
        .map(i64::from_le_bytes);
    let target_info: Vec<u8> = challenge
        .target_information
        .iter()
        .flat_map(|e| e.to_bytes())
        .collect();
    let creds = Credentials {
        username: username.to_owned(),
        password: password.to_owned(),
        domain: domain.to_owned(),
    };
    let response = ntlmclient::respond_challenge_ntlm_v2(
        challenge.challenge,
        &target_info,
        server_time.unwrap_or_else(|| filetime(now)),
        &creds,
    );
    let msg = response.to_message(
        &creds,
        workstation,
        flags() & challenge.flags | Flags::NEGOTIATE_UNICODE | Flags::NEGOTIATE_NTLM,
    );
    let bytes = msg
        .to_bytes()
        .map_err(|e| bad(format!("encoding AUTHENTICATE: {e:?}")))?;
    Ok(STANDARD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filetime_matches_the_spec_epoch() {
        let unix0: DateTime<Utc> = "1970-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(filetime(unix0), 116_444_736_000_000_000);
        let t: DateTime<Utc> = "1970-01-01T00:00:01.0000005Z".parse().unwrap();
        assert_eq!(filetime(t), 116_444_736_010_000_005);
    }

    #[test]
    fn negotiate_is_a_type_1_message() {
        let b = STANDARD.decode(negotiate("PROBE01").unwrap()).unwrap();
        assert_eq!(&b[..8], b"NTLMSSP\0");
        assert_eq!(u32::from_le_bytes(b[8..12].try_into().unwrap()), 1);
        assert!(parse_challenge("Negotiate abc").is_none());
        assert!(parse_challenge("NTLM !!!").unwrap().is_err());
    }
}
