//! The one JWT algorithm Tincan uses, HS256, as `jsonwebtoken`'s crypto
//! provider.
//!
//! `jsonwebtoken` picks its signers at run time from the token's algorithm,
//! so its `rust_crypto` backend links RSA, ECDSA (P-256, P-384) and Ed25519
//! into every binary that checks a token: about 300 KB of each Lambda for
//! algorithms we never accept. This provider knows HS256 alone (RustCrypto's
//! `hmac` and `sha2`, as that backend uses) and refuses every other
//! algorithm as an invalid one, which `Validation::new(HS256)` already
//! does before any key is touched.

use hmac::{Hmac, Mac};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sha2::Sha256;
use signature::{Signer, Verifier};

type HmacSha256 = Hmac<Sha256>;

/// HS256 only; no JWK support (we use none).
static HS256_ONLY: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    key_utils: KeyUtils::new_unimplemented(),
};

/// Makes HS256 `jsonwebtoken`'s crypto for this process. Idempotent, and
/// called by everything in the workspace that signs or checks a JWT before
/// it does.
pub fn install_hs256_crypto() {
    // Err means a provider is already installed: ours, by an earlier call.
    let _ = HS256_ONLY.install_default();
}

fn mac(algorithm: &Algorithm, key: &[u8]) -> Result<HmacSha256> {
    if *algorithm != Algorithm::HS256 {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    HmacSha256::new_from_slice(key).map_err(|_| ErrorKind::InvalidKeyFormat.into())
}

fn signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    Ok(Box::new(Hs256(mac(algorithm, key.as_bytes())?)))
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    Ok(Box::new(Hs256(mac(algorithm, key.try_get_as_bytes()?)?)))
}

/// An HS256 key, signing and verifying.
struct Hs256(HmacSha256);

impl Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        let mut mac = self.0.clone();
        mac.update(message);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl Verifier<Vec<u8>> for Hs256 {
    fn verify(&self, message: &[u8], tag: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        let mut mac = self.0.clone();
        mac.update(message);
        // Constant-time comparison.
        mac.verify_slice(tag).map_err(signature::Error::from_source)
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2: HMAC-SHA-256, key "Jefe".
    #[test]
    fn signs_as_rfc_4231_says() {
        let tag = Hs256(mac(&Algorithm::HS256, b"Jefe").unwrap())
            .try_sign(b"what do ya want for nothing?")
            .unwrap();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn other_algorithms_are_refused() {
        for algorithm in [
            Algorithm::HS384,
            Algorithm::RS256,
            Algorithm::ES256,
            Algorithm::EdDSA,
        ] {
            assert!(signer(&algorithm, &EncodingKey::from_secret(b"k")).is_err());
            assert!(verifier(&algorithm, &DecodingKey::from_secret(b"k")).is_err());
        }
    }

    #[test]
    fn a_wrong_tag_does_not_verify() {
        let key = Hs256(mac(&Algorithm::HS256, b"secret").unwrap());
        let mut tag = key.try_sign(b"message").unwrap();
        assert!(key.verify(b"message", &tag).is_ok());
        tag[0] ^= 1;
        assert!(key.verify(b"message", &tag).is_err());
        assert!(key.verify(b"message", &tag[..16].to_vec()).is_err());
    }
}
