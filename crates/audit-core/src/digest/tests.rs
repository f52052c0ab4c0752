#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use super::*;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, KeyPair};

fn sample(sequence: u64) -> EvidenceDigest {
    EvidenceDigest {
        format: FORMAT.to_owned(),
        sequence,
        kind: DigestKind::Hourly,
        window_start: rfc3339(1_796_018_400_000),
        window_end: rfc3339(1_796_022_000_000),
        written_at: rfc3339(1_796_022_300_123),
        digest_bucket: "evidence".to_owned(),
        digest_key: digest_key(DEFAULT_PREFIX, 1_796_022_000_000, None),
        previous: None,
        signing: SigningKeyInfo {
            key_id: "arn:aws:kms:eu-west-1:123456789012:key/k".to_owned(),
            public_key_fingerprint: "00".repeat(32),
            algorithm: SigningAlgorithm::EcdsaSha256,
        },
        evidence: vec![EvidenceLocation::parse("evidence/rds-logs/").unwrap()],
        objects: vec![DigestedObject {
            bucket: "evidence".to_owned(),
            key: "rds-logs/db-1/audit/server_audit.log.gz".to_owned(),
            version_id: Some("v1".to_owned()),
            size: 42,
            sha256: "ab".repeat(32),
            last_modified: rfc3339(1_796_019_000_000),
            source_sha256: Some("cd".repeat(32)),
            source_size: Some(12),
            vanished: false,
            unreadable: None,
        }],
        sources: None,
    }
}

#[test]
fn the_signing_string_is_cloudtrails_four_lines() {
    assert_eq!(
        signing_string("2026-11-30T07:00:00Z", "b", "p/k.json.gz", "ff", None),
        "2026-11-30T07:00:00Z\nb/p/k.json.gz\nff\nnull"
    );
    assert_eq!(
        signing_string("2026-11-30T07:00:00Z", "b", "k", "ff", Some("0a1b")),
        "2026-11-30T07:00:00Z\nb/k\nff\n0a1b"
    );
}

#[test]
fn digest_keys_are_named_by_window_end_and_backfills_by_sequence() {
    let end = parse_rfc3339("2026-11-30T07:00:00Z").unwrap();
    assert_eq!(
        digest_key("auditkit-digests/", end, None),
        "auditkit-digests/2026/11/30/auditkit-digest_20261130T070000Z.json.gz"
    );
    assert_eq!(
        digest_key("d/", end, Some(17)),
        "d/2026/11/30/auditkit-digest_20261130T070000Z_backfill_17.json.gz"
    );
}

#[test]
fn times_round_trip_through_rfc3339() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(1_796_022_300_123), "2026-11-30T07:05:00.123Z");
    assert_eq!(
        parse_rfc3339(&rfc3339(1_796_022_300_123)),
        Some(1_796_022_300_123)
    );
    assert_eq!(
        parse_rfc3339("2026-11-30T08:00:00+01:00"),
        Some(1_796_022_000_000)
    );
    assert_eq!(parse_rfc3339("yesterday"), None);
}

#[test]
fn a_document_survives_encoding_and_its_hash_is_of_the_uncompressed_json() {
    let digest = sample(3);
    let encoded = encode(&digest);
    assert_eq!(encoded.sha256, hex::encode(Sha256::digest(&encoded.json)));
    let (decoded, sha256) = decode(&encoded.gzip).unwrap();
    assert_eq!(decoded, digest);
    assert_eq!(sha256, encoded.sha256);
}

#[test]
fn a_document_with_unknown_fields_still_reads_and_an_unknown_format_does_not() {
    let mut json: serde_json::Value = serde_json::to_value(sample(1)).unwrap();
    json["added_later"] = serde_json::json!({"heads": []});
    let gzip = |v: &serde_json::Value| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&serde_json::to_vec(v).unwrap()).unwrap();
        gz.finish().unwrap()
    };
    assert_eq!(decode(&gzip(&json)).unwrap().0, sample(1));
    json["format"] = "auditkit-digest/9".into();
    assert!(
        matches!(decode(&gzip(&json)), Err(DecodeError::Format(f)) if f == "auditkit-digest/9")
    );
    assert!(matches!(decode(b"plain text"), Err(DecodeError::Gzip(_))));
}

#[test]
fn an_ecdsa_signature_verifies_only_for_its_message_and_key() {
    let rng = SystemRandom::new();
    let pkcs8 =
        sig::EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let pair = sig::EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
        .unwrap();
    let spki = pair.public_key().as_der().unwrap();
    let message = signing_string("2026-11-30T07:00:00Z", "b", "k", "ff", None);
    let signature = pair.sign(&rng, message.as_bytes()).unwrap();
    let alg = SigningAlgorithm::EcdsaSha256;
    assert!(verify_signature(
        spki.as_ref(),
        alg,
        message.as_bytes(),
        signature.as_ref()
    ));
    assert!(!verify_signature(
        spki.as_ref(),
        alg,
        b"another message",
        signature.as_ref()
    ));
    let other = sig::EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let other_spki = other.public_key().as_der().unwrap();
    assert!(!verify_signature(
        other_spki.as_ref(),
        alg,
        message.as_bytes(),
        signature.as_ref()
    ));
    assert!(!verify_signature(
        b"not a key",
        alg,
        message.as_bytes(),
        signature.as_ref()
    ));
}

#[test]
fn an_rsa_signature_verifies_with_the_der_public_key_kms_returns() {
    let pair = sig::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let spki = pair.public_key().as_der().unwrap();
    let message = b"2026-11-30T07:00:00Z\nb/k\nff\nnull";
    let mut signature = vec![0; pair.public_modulus_len()];
    pair.sign(
        &sig::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        message,
        &mut signature,
    )
    .unwrap();
    let alg = SigningAlgorithm::RsaPkcs1Sha256;
    assert!(verify_signature(spki.as_ref(), alg, message, &signature));
    signature[10] ^= 1;
    assert!(!verify_signature(spki.as_ref(), alg, message, &signature));
}

#[test]
fn a_public_key_round_trips_through_pem_and_has_a_stable_fingerprint() {
    let pair = sig::EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let der = pair.public_key().as_der().unwrap().as_ref().to_vec();
    let pem = public_key_pem(&der);
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    assert_eq!(public_key_from_pem(&pem).unwrap(), der);
    assert_eq!(fingerprint(&der), hex::encode(Sha256::digest(&der)));
    let private = pem::encode(&pem::Pem::new("PRIVATE KEY", vec![1, 2, 3]));
    assert!(
        public_key_from_pem(&private)
            .unwrap_err()
            .contains("PUBLIC KEY")
    );
}

#[test]
fn evidence_locations_parse_bucket_and_prefix_and_reject_what_is_not_a_bucket() {
    let l = EvidenceLocation::parse("my-bucket/rds-logs/").unwrap();
    assert_eq!(
        (l.bucket.as_str(), l.prefix.as_str()),
        ("my-bucket", "rds-logs/")
    );
    assert!(l.contains("my-bucket", "rds-logs/a"));
    assert!(!l.contains("my-bucket", "other/a"));
    assert!(!l.contains("other-bucket", "rds-logs/a"));
    assert_eq!(EvidenceLocation::parse("whole-bucket").unwrap().prefix, "");
    for bad in ["", "ab/x", "Upper/x", "b_u/x", "bucket/with\nnewline"] {
        assert!(EvidenceLocation::parse(bad).is_none(), "{bad:?}");
    }
}

#[test]
fn the_preferred_algorithm_is_ecdsa_then_pkcs1() {
    assert_eq!(
        SigningAlgorithm::preferred(&["RSASSA_PSS_SHA_256", "RSASSA_PKCS1_V1_5_SHA_256"]),
        Some(SigningAlgorithm::RsaPkcs1Sha256)
    );
    assert_eq!(
        SigningAlgorithm::preferred(&["ECDSA_SHA_256"]),
        Some(SigningAlgorithm::EcdsaSha256)
    );
    assert_eq!(SigningAlgorithm::preferred(&["SM2DSA"]), None);
}
