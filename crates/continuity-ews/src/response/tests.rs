use super::{cursor::fast_datetime, *};

const FIND: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">
  <s:Header><h:ServerVersionInfo xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types" MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" MinorBuildNumber="6" Version="V2017_07_11"/></s:Header>
  <s:Body>
<m:FindItemResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
  <m:ResponseMessages>
    <m:FindItemResponseMessage ResponseClass="Success">
      <m:ResponseCode>NoError</m:ResponseCode>
      <m:RootFolder IndexedPagingOffset="1" TotalItemsInView="1" IncludesLastItemInRange="true">
        <t:Items>
          <t:Message>
            <t:ItemId Id="AAMk=" ChangeKey="CQA"/>
            <t:Subject>[continuity-probe] p&amp;1 &#x263A;</t:Subject>
            <t:DateTimeReceived>2026-01-05T10:00:03.250Z</t:DateTimeReceived>
            <t:DateTimeSent>2026-01-05T09:59:58Z</t:DateTimeSent>
            <t:ExtendedProperty>
              <t:ExtendedFieldURI DistinguishedPropertySetId="InternetHeaders" PropertyName="X-Continuity-Probe-Id" PropertyType="String"/>
              <t:Value>p1</t:Value>
            </t:ExtendedProperty>
          </t:Message>
        </t:Items>
      </m:RootFolder>
    </m:FindItemResponseMessage>
  </m:ResponseMessages>
</m:FindItemResponse>
  </s:Body>
</s:Envelope>"#;

fn ok() -> HttpMeta<'static> {
    HttpMeta {
        status: 200,
        ..Default::default()
    }
}

#[test]
fn find_item_success() {
    let r = parse_http("FindItem", &ok(), FIND.as_bytes()).unwrap();
    assert_eq!(
        r.server.as_ref().unwrap().version.as_deref(),
        Some("V2017_07_11")
    );
    let m = r.first("FindItem").unwrap();
    let rf = m.root_folder.unwrap();
    assert!(rf.includes_last_item_in_range);
    assert_eq!(rf.indexed_paging_offset, Some(1));
    let item = &m.items[0];
    assert_eq!(
        item.subject.as_deref(),
        Some("[continuity-probe] p&1 \u{263A}")
    );
    assert_eq!(item.probe_header.as_deref(), Some("p1"));
    assert_eq!(item.id.as_ref().unwrap().change_key.as_deref(), Some("CQA"));
    assert_eq!(
        item.received.unwrap().to_rfc3339(),
        "2026-01-05T10:00:03.250+00:00"
    );
}

#[test]
fn attribute_values_are_unescaped() {
    let doc = FIND.replace(r#"ChangeKey="CQA""#, "ChangeKey=\"C&amp;Q&#x41;\tx\"");
    let m = parse_http("FindItem", &ok(), doc.as_bytes())
        .unwrap()
        .first("FindItem")
        .unwrap();
    assert_eq!(
        m.items[0].id.as_ref().unwrap().change_key.as_deref(),
        Some("C&QA x")
    );
}

#[test]
fn prefixes_do_not_matter() {
    // Default namespaces everywhere, and other prefixes.
    let doc = FIND
        .replace("<s:", "<soapenv:")
        .replace("</s:", "</soapenv:")
        .replace("xmlns:s=", "xmlns:soapenv=")
        .replace("<m:", "<")
        .replace("</m:", "</")
        .replace("xmlns:m=", "xmlns=")
        .replace("<t:", "<types:")
        .replace("</t:", "</types:")
        .replace("xmlns:t=", "xmlns:types=");
    let m = parse_http("FindItem", &ok(), doc.as_bytes())
        .unwrap()
        .first("FindItem")
        .unwrap();
    assert_eq!(m.items.len(), 1);
    assert_eq!(m.items[0].probe_header.as_deref(), Some("p1"));
    // Same local names in a foreign namespace are not EWS elements.
    let foreign = FIND.replace("exchange/services/2006/messages", "example/other");
    assert!(matches!(
        parse_http("FindItem", &ok(), foreign.as_bytes()),
        Err(EwsError::Malformed { .. })
    ));
}

#[test]
fn faults() {
    let busy = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/ews-schema/harness/samples/fault-serverbusy.xml"
    ))
    .expect("the shared EWS samples must be at <workspace>/../shared/ews-schema");
    let e = parse_http(
        "FindItem",
        &HttpMeta {
            status: 500,
            ..ok()
        },
        &busy,
    )
    .unwrap_err();
    assert!(
        matches!(e, EwsError::ServerBusy { back_off: Some(b), .. } if b.as_millis() == 30000),
        "{e:?}"
    );
    let denied = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorImpersonateUserDenied</faultcode><faultstring xml:lang="en-US">The account does not have permission to impersonate the requested user.</faultstring><detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorImpersonateUserDenied</e:ResponseCode><e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">The account does not have permission to impersonate the requested user.</e:Message></detail></s:Fault></s:Body></s:Envelope>"#;
    let e = parse_http(
        "GetFolder",
        &HttpMeta {
            status: 500,
            ..ok()
        },
        denied.as_bytes(),
    )
    .unwrap_err();
    match e {
        EwsError::Fault {
            code,
            message,
            status,
            ..
        } => {
            assert_eq!(code.as_str(), "ErrorImpersonateUserDenied");
            assert!(message.contains("impersonate"));
            assert_eq!(status, 500);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn response_message_busy() {
    let doc = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/ews-schema/harness/samples/finditem-response-serverbusy.xml"
    ))
    .unwrap();
    let e = parse_http("FindItem", &ok(), &doc)
        .unwrap()
        .first("FindItem")
        .unwrap_err();
    assert!(
        matches!(e, EwsError::ServerBusy { back_off: Some(b), .. } if b.as_millis() == 5000),
        "{e:?}"
    );
}

#[test]
fn html_and_empty_bodies() {
    let meta = HttpMeta {
        status: 502,
        content_type: Some("text/html"),
        ..ok()
    };
    let e = parse_http(
        "FindItem",
        &meta,
        b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>",
    )
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("HTTP 502") && text.contains("Bad Gateway"),
        "{text}"
    );
    assert!(e.is_retryable());
    let e = parse_http(
        "FindItem",
        &HttpMeta {
            status: 503,
            ..ok()
        },
        b"",
    )
    .unwrap_err();
    assert!(e.to_string().contains("empty body"), "{e}");
    let e = parse_http("FindItem", &ok(), b"").unwrap_err();
    assert!(matches!(e, EwsError::Malformed { .. }));
}

#[test]
fn fast_dates_agree_with_chrono() {
    for s in [
        "2026-01-05T10:00:03Z",
        "2026-01-05T10:00:03.250Z",
        "2026-01-05T10:00:03.1234567Z",
        "2026-01-05T10:00:03.1234567891Z",
        "2026-01-05T10:00:03+01:30",
        "2026-01-05T10:00:03.5-08:00",
        "2024-02-29T23:59:59Z",
    ] {
        let want = DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(fast_datetime(s), Some(want), "{s}");
    }
    for s in [
        "2026-02-30T10:00:03Z",
        "2026-01-05T25:00:03Z",
        "2026-01-05T10:00:03",
        "2026-01-05T10:00:03.Z",
        "2026-01-05 10:00:03Z",
        "2026-01-05T10:00:03+0100",
    ] {
        assert_eq!(fast_datetime(s), None, "{s}");
    }
}

#[test]
fn truncated_and_garbage() {
    for cut in [10, 100, 500, FIND.len() - 3] {
        let e = parse_http("FindItem", &ok(), &FIND.as_bytes()[..cut]).unwrap_err();
        assert!(matches!(e, EwsError::Malformed { .. }), "{cut}: {e:?}");
    }
    let e = parse_http(
        "FindItem",
        &ok(),
        FIND.replace("2026-01-05T10:00:03.250Z", "yesterday")
            .as_bytes(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("DateTimeReceived"), "{e}");
}

#[test]
fn a_body_over_the_limit_is_refused_before_parsing() {
    // At the limit the body is parsed (and found not to be XML).
    let mut body = vec![b' '; MAX_BODY_BYTES];
    let e = parse_http("FindItem", &ok(), &body).unwrap_err();
    assert!(matches!(e, EwsError::Malformed { .. }), "{e:?}");
    body.push(b' ');
    for e in [
        parse_http("FindItem", &ok(), &body).unwrap_err(),
        parse_envelope("FindItem", 200, &body).unwrap_err(),
    ] {
        assert!(
            matches!(
                e,
                EwsError::TooLarge {
                    limit: MAX_BODY_BYTES
                }
            ),
            "{e:?}"
        );
    }
    // A well-formed answer padded past the limit is refused too.
    let mut padded = FIND.as_bytes().to_vec();
    padded.resize(MAX_BODY_BYTES + 1, b' ');
    assert!(matches!(
        parse_http("FindItem", &ok(), &padded).unwrap_err(),
        EwsError::TooLarge { .. }
    ));
}
