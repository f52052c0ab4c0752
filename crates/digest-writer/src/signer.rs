//! The KMS adapter: the signing key's public half (for the fingerprint and the algorithm) and
//! signatures, each checked against that public key before a digest may carry it.

use crate::DigestError;
use audit_core::digest::{
    MAX_RAW_MESSAGE, SigningAlgorithm, SigningKeyInfo, fingerprint, verify_signature,
};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeyUsageType, MessageType, SigningAlgorithmSpec};

#[derive(Debug, Clone)]
pub struct Signer {
    pub kms: aws_sdk_kms::Client,
    pub key_id: String,
}

/// The key as digests name it, with the DER public key that verifies its signatures.
#[derive(Debug, Clone)]
pub struct SigningKey {
    pub info: SigningKeyInfo,
    pub public_key_der: Vec<u8>,
}

impl Signer {
    pub async fn describe(&self) -> Result<SigningKey, DigestError> {
        let unusable = |problem: String| DigestError::SigningKey {
            key: self.key_id.clone(),
            problem,
        };
        let key = self
            .kms
            .get_public_key()
            .key_id(&self.key_id)
            .send()
            .await
            .map_err(|e| DigestError::aws("GetPublicKey", &e))?;
        if key.key_usage() != Some(&KeyUsageType::SignVerify) {
            return Err(unusable(format!(
                "its key usage is {:?}, not SIGN_VERIFY",
                key.key_usage()
            )));
        }
        let offered: Vec<&str> = key
            .signing_algorithms()
            .iter()
            .map(|a| a.as_str())
            .collect();
        let algorithm = SigningAlgorithm::preferred(&offered).ok_or_else(|| {
            unusable(format!(
                "it offers {offered:?}; digests need ECDSA_SHA_256 (ECC_NIST_P256) or an RSA SHA-256 algorithm"
            ))
        })?;
        let der = key
            .public_key()
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| unusable("GetPublicKey returned no public key".into()))?;
        Ok(SigningKey {
            info: SigningKeyInfo {
                // KMS answers with the key's ARN (moto with its bare id: then the configured
                // name, which is an ARN in the stack, is the better record).
                key_id: key
                    .key_id()
                    .filter(|id| id.starts_with("arn:"))
                    .unwrap_or(&self.key_id)
                    .to_owned(),
                public_key_fingerprint: fingerprint(&der),
                algorithm,
            },
            public_key_der: der,
        })
    }

    /// The hex signature of `message` (a digest's signing string, signed RAW: it is far below
    /// KMS's 4,096-byte limit for RAW messages).
    pub async fn sign(&self, key: &SigningKey, message: &[u8]) -> Result<String, DigestError> {
        if message.len() > MAX_RAW_MESSAGE {
            return Err(DigestError::Chain(format!(
                "a signing string of {} bytes exceeds KMS's RAW limit of {MAX_RAW_MESSAGE}",
                message.len()
            )));
        }
        let signed = self
            .kms
            .sign()
            .key_id(&key.info.key_id)
            .message(Blob::new(message))
            .message_type(MessageType::Raw)
            .signing_algorithm(SigningAlgorithmSpec::from(key.info.algorithm.as_str()))
            .send()
            .await
            .map_err(|e| DigestError::aws("Sign", &e))?;
        let signature = signed
            .signature()
            .map(|b| b.as_ref().to_vec())
            .unwrap_or_default();
        if !verify_signature(&key.public_key_der, key.info.algorithm, message, &signature) {
            return Err(DigestError::SigningKey {
                key: key.info.key_id.clone(),
                problem: "KMS returned a signature its own public key does not verify".into(),
            });
        }
        Ok(hex::encode(signature))
    }
}
