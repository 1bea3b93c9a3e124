//! Every request the crate builds validates against Microsoft's EWS schema
//! (`<workspace>/../shared/ews-schema`, checked with its `harness/validate.sh`),
//! and the validator really rejects broken requests.

use chrono::{DateTime, Utc};
use continuity_ews::request::{
    self, DeleteType, Disposition, Envelope, FindQuery, Folder, ItemId, ProbeMessage, ServerVersion,
};
use continuity_test_support::ews_schema::{validate, validate_with_script};

fn all_requests() -> Vec<(String, String)> {
    let after: DateTime<Utc> = "2026-03-02T07:55:00Z".parse().unwrap();
    let ids = [
        ItemId {
            id: "AAMkAGI2TG93AAA=".into(),
            change_key: Some("CQAAABYAAAA".into()),
        },
        ItemId {
            id: "AAMk<&>\"'".into(),
            change_key: None,
        },
    ];
    let mut out = Vec::new();
    for version in ServerVersion::ALL {
        for imp in [
            Some("probe-sender@example.org"),
            Some("o'brien&co@example.org"),
            None,
        ] {
            let env = Envelope {
                version,
                impersonate: imp,
            };
            let tag = format!("{}-{}", version.as_str(), imp.map_or("noimp", |_| "imp"));
            for disposition in [Disposition::SendOnly, Disposition::SendAndSaveCopy] {
                let msg = ProbeMessage {
                    probe_id: "ou-1767225600000<&>",
                    to: "probe@gateway.example",
                    disposition,
                };
                out.push((
                    format!("create-{tag}-{disposition:?}"),
                    request::create_item(&env, &msg),
                ));
            }
            for received_after in [None, Some(after)] {
                let q = FindQuery {
                    probe_id: "in-17672256\"00000",
                    folders: &[Folder::Inbox, Folder::JunkEmail],
                    offset: 50,
                    page_size: 5000,
                    received_after,
                };
                out.push((
                    format!("find-{tag}-{}", received_after.is_some()),
                    request::find_item(&env, &q),
                ));
            }
            out.push((format!("get-{tag}"), request::get_item(&env, &ids)));
            for how in [
                DeleteType::HardDelete,
                DeleteType::SoftDelete,
                DeleteType::MoveToDeletedItems,
            ] {
                out.push((
                    format!("delete-{tag}-{how:?}"),
                    request::delete_item(&env, &ids, how),
                ));
            }
            out.push((
                format!("getfolder-{tag}"),
                request::get_folder(&env, Folder::Inbox),
            ));
        }
    }
    out
}

#[test]
fn every_request_validates_against_the_schema() {
    let docs = all_requests();
    let refs: Vec<(&str, String)> = docs.iter().map(|(n, x)| (n.as_str(), x.clone())).collect();
    // One run of the project's script over all documents (one schema compilation).
    if let Err(e) = validate_with_script(&refs) {
        panic!("requests fail the EWS schema:\n{e}");
    }
    assert!(docs.len() > 100);
}

#[test]
fn the_validator_rejects_what_exchange_rejects() {
    let env = Envelope::impersonating(ServerVersion::Exchange2013Sp1, "a@example.org");
    let msg = ProbeMessage {
        probe_id: "p",
        to: "b@example.net",
        disposition: Disposition::SendOnly,
    };
    let good = request::create_item(&env, &msg);
    validate(&good).expect("the good request is valid");
    for (what, bad) in [
        (
            "unknown version",
            good.replace("Exchange2013_SP1", "Exchange2019"),
        ),
        ("wrong disposition", good.replace("SendOnly", "Send")),
        (
            "https soap namespace",
            good.replace("http://schemas.xmlsoap.org", "https://schemas.xmlsoap.org"),
        ),
        (
            "empty ConnectingSID",
            good.replace(
                "<t:PrimarySmtpAddress>a@example.org</t:PrimarySmtpAddress>",
                "",
            ),
        ),
        (
            "misspelt property set",
            good.replace("InternetHeaders", "InternetHeader"),
        ),
        (
            "subject after recipients",
            good.replace("<t:Subject>[continuity-probe] p</t:Subject>", "")
                .replace(
                    "</t:ToRecipients>",
                    "</t:ToRecipients><t:Subject>x</t:Subject>",
                ),
        ),
    ] {
        assert_ne!(bad, good, "{what}: the mutation applied");
        assert!(validate(&bad).is_err(), "{what} must be rejected");
    }
}
