//! SPIFFE ids: the mesh form parses and prints back unchanged, and every malformed form is
//! refused with the error that says what is wrong.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use mesh_vocab::{SpiffeId, SpiffeIdErrorKind};

#[test]
fn a_mesh_id_parses_into_its_parts_and_prints_back() {
    let text = "spiffe://cluster.local/ns/bookinfo/sa/reviews-v2_x.y";
    let id = SpiffeId::parse(text).unwrap();
    assert_eq!(id.trust_domain(), "cluster.local");
    assert_eq!(id.namespace(), "bookinfo");
    assert_eq!(id.service_account(), "reviews-v2_x.y");
    assert_eq!(id.to_string(), text);
    assert_eq!(text.parse::<SpiffeId>().unwrap(), id);
    assert_eq!(
        SpiffeId::new("cluster.local", "bookinfo", "reviews-v2_x.y").unwrap(),
        id
    );
}

#[test]
fn path_segments_may_hold_uppercase_letters() {
    let id = SpiffeId::parse("spiffe://example.org/ns/Default/sa/Web").unwrap();
    assert_eq!(id.namespace(), "Default");
}

#[test]
fn new_checks_its_parts() {
    let error = SpiffeId::new("example.org", "a/b", "c").unwrap_err();
    assert_eq!(
        error.kind(),
        &SpiffeIdErrorKind::PathShape("/ns/a/b/sa/c".into())
    );
}

#[test]
fn every_malformed_form_has_its_error() {
    use SpiffeIdErrorKind as K;
    let segment_char = |segment: &str, character| K::SegmentCharacter {
        segment: segment.into(),
        character,
    };
    let cases: Vec<(String, SpiffeIdErrorKind)> = vec![
        ("".into(), K::Empty),
        ("https://example.org/ns/a/sa/b".into(), K::MissingScheme),
        ("SPIFFE://example.org/ns/a/sa/b".into(), K::MissingScheme),
        ("spiffe:/example.org/ns/a/sa/b".into(), K::MissingScheme),
        ("spiffe:///ns/a/sa/b".into(), K::EmptyTrustDomain),
        ("spiffe://".into(), K::EmptyTrustDomain),
        (
            "spiffe://Example.org/ns/a/sa/b".into(),
            K::TrustDomainCharacter('E'),
        ),
        (
            "spiffe://example.org:8443/ns/a/sa/b".into(),
            K::TrustDomainCharacter(':'),
        ),
        (
            "spiffe://user@example.org/ns/a/sa/b".into(),
            K::TrustDomainCharacter('@'),
        ),
        (
            "spiffe://example.org?x/ns/a/sa/b".into(),
            K::TrustDomainCharacter('?'),
        ),
        (
            format!("spiffe://{}/ns/a/sa/b", "a".repeat(256)),
            K::TrustDomainTooLong(256),
        ),
        ("spiffe://example.org".into(), K::MissingPath),
        ("spiffe://example.org/".into(), K::EmptySegment),
        (
            "spiffe://example.org/ns/a".into(),
            K::PathShape("/ns/a".into()),
        ),
        (
            "spiffe://example.org/ns/a/sa".into(),
            K::PathShape("/ns/a/sa".into()),
        ),
        (
            "spiffe://example.org/ns/a/sa/b/c".into(),
            K::PathShape("/ns/a/sa/b/c".into()),
        ),
        (
            "spiffe://example.org/namespace/a/sa/b".into(),
            K::PathShape("/namespace/a/sa/b".into()),
        ),
        (
            "spiffe://example.org/sa/b/ns/a".into(),
            K::PathShape("/sa/b/ns/a".into()),
        ),
        ("spiffe://example.org/ns//sa/b".into(), K::EmptySegment),
        ("spiffe://example.org/ns/a/sa/b/".into(), K::EmptySegment),
        (
            "spiffe://example.org/ns/../sa/b".into(),
            K::DotSegment("..".into()),
        ),
        (
            "spiffe://example.org/ns/./sa/b".into(),
            K::DotSegment(".".into()),
        ),
        (
            "spiffe://example.org/ns/a/sa/b?x=1".into(),
            segment_char("b?x=1", '?'),
        ),
        (
            "spiffe://example.org/ns/a/sa/b#frag".into(),
            segment_char("b#frag", '#'),
        ),
        (
            "spiffe://example.org/ns/a%20b/sa/c".into(),
            segment_char("a%20b", '%'),
        ),
        (
            "spiffe://example.org/ns/a b/sa/c".into(),
            segment_char("a b", ' '),
        ),
        (
            format!("spiffe://example.org/ns/a/sa/{}", "b".repeat(2048)),
            K::TooLong(2048 + "spiffe://example.org/ns/a/sa/".len()),
        ),
    ];
    for (input, kind) in cases {
        let error = SpiffeId::parse(&input).unwrap_err();
        assert_eq!(error.kind(), &kind, "{input:?}");
        assert_eq!(error.input(), input);
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("invalid SPIFFE id {input:?}: ")),
            "{message}"
        );
    }
}

#[test]
fn errors_say_what_is_wrong() {
    let message = |s: &str| SpiffeId::parse(s).unwrap_err().to_string();
    assert_eq!(
        message("spiffe://example.org/ns/a"),
        r#"invalid SPIFFE id "spiffe://example.org/ns/a": the path "/ns/a" is not /ns/NAMESPACE/sa/SERVICE_ACCOUNT"#
    );
    assert_eq!(
        message("spiffe://Example.org/ns/a/sa/b"),
        r#"invalid SPIFFE id "spiffe://Example.org/ns/a/sa/b": the trust domain holds 'E'; only lowercase letters, digits, '.', '-' and '_' are allowed"#
    );
}

#[test]
fn the_forms_authorization_refused_are_refused() {
    // `mesh-config` used to split ids with a looser parser of its own; everything it
    // refused, this one refuses too.
    for bad in [
        "spiffe://example.org/ns/shop/sa",
        "spiffe://example.org/ns//sa/cart",
        "spiffe:///ns/shop/sa/cart",
        "spiffe://example.org/sa/cart/ns/shop",
        "http://example.org/ns/shop/sa/cart",
        "spiffe://example.org",
    ] {
        assert!(SpiffeId::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_trust_domain_is_checked_alone_as_in_an_id() {
    use mesh_vocab::spiffe::check_trust_domain;
    assert_eq!(check_trust_domain("cluster.local"), Ok(()));
    assert_eq!(check_trust_domain("my_org-1.example"), Ok(()));
    assert_eq!(
        check_trust_domain(""),
        Err(SpiffeIdErrorKind::EmptyTrustDomain)
    );
    assert_eq!(
        check_trust_domain("Cluster.local"),
        Err(SpiffeIdErrorKind::TrustDomainCharacter('C'))
    );
    assert_eq!(
        check_trust_domain("a/b"),
        Err(SpiffeIdErrorKind::TrustDomainCharacter('/'))
    );
    assert_eq!(
        check_trust_domain(&"a".repeat(256)),
        Err(SpiffeIdErrorKind::TrustDomainTooLong(256))
    );
}
