//! The account domain's records, as the API shows them (camelCase JSON) and
//! as the stores keep them.

use serde::{Deserialize, Serialize};

/// A user as everyone may see it: `{id, username, displayName}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Stable id (a UUID); tokens and call records name users by it.
    pub id: String,
    /// Login name, as the user typed it at registration (unique ignoring case).
    pub username: String,
    /// Name shown to other peers.
    pub display_name: String,
}

/// A user as the user store keeps it: with the password hash.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredUser {
    /// The public part.
    #[serde(flatten)]
    pub user: User,
    /// PHC string of the argon2id hash of the password.
    pub password_hash: String,
    /// Registration time, ms since the epoch.
    pub created_at_ms: u64,
}

impl StoredUser {
    /// The key the uniqueness rule uses: the username in lower case.
    pub fn username_key(&self) -> String {
        username_key(&self.user.username)
    }
}

impl std::fmt::Debug for StoredUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the hash.
        f.debug_struct("StoredUser")
            .field("user", &self.user)
            .field("created_at_ms", &self.created_at_ms)
            .finish_non_exhaustive()
    }
}

/// The case-insensitive key of a username. Usernames are ASCII (see
/// `validate`), so ASCII lower-casing is exact.
pub fn username_key(username: &str) -> String {
    username.to_ascii_lowercase()
}

/// A login session: one refresh-token family. The token itself is never
/// stored, only its SHA-256.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthSession {
    /// Session id; the first part of every refresh token of this session.
    pub id: String,
    /// Whose session it is.
    pub user_id: String,
    /// Hex SHA-256 of the current refresh token.
    pub token_hash: String,
    /// Created at, ms since the epoch.
    pub created_at_ms: u64,
    /// The current refresh token stops working at this time (ms).
    pub expires_at_ms: u64,
    /// Revoked by logout or by reuse of a rotated token.
    pub revoked: bool,
}

impl std::fmt::Debug for AuthSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSession")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("expires_at_ms", &self.expires_at_ms)
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

/// Audio preferences. Every field has a default, so a stored record from an
/// older version (or none at all) still reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Preferences {
    /// `getUserMedia` `echoCancellation`.
    pub echo_cancellation: bool,
    /// `getUserMedia` `noiseSuppression`.
    pub noise_suppression: bool,
    /// `getUserMedia` `autoGainControl`.
    pub auto_gain_control: bool,
    /// Join rooms muted.
    pub start_muted: bool,
    /// Preferred microphone (`MediaDeviceInfo.deviceId`), if any.
    pub input_device_id: Option<String>,
    /// Preferred speaker (`MediaDeviceInfo.deviceId`), if any.
    pub output_device_id: Option<String>,
}

impl Default for Preferences {
    fn default() -> Self {
        Self {
            echo_cancellation: true,
            noise_suppression: true,
            auto_gain_control: true,
            start_muted: false,
            input_device_id: None,
            output_device_id: None,
        }
    }
}

/// A partial update of [`Preferences`] (`PUT /me/preferences`): fields left
/// out keep their value; a device id set to `null` is cleared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreferencesPatch {
    /// New `echoCancellation`.
    pub echo_cancellation: Option<bool>,
    /// New `noiseSuppression`.
    pub noise_suppression: Option<bool>,
    /// New `autoGainControl`.
    pub auto_gain_control: Option<bool>,
    /// New `startMuted`.
    pub start_muted: Option<bool>,
    /// New microphone: absent keeps, `null` clears.
    #[serde(default, deserialize_with = "double_option")]
    pub input_device_id: Option<Option<String>>,
    /// New speaker: absent keeps, `null` clears.
    #[serde(default, deserialize_with = "double_option")]
    pub output_device_id: Option<Option<String>>,
}

fn double_option<'de, D>(d: D) -> Result<Option<Option<String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Option::<String>::deserialize(d).map(Some)
}

impl PreferencesPatch {
    /// `current` with this patch applied.
    pub fn apply(&self, current: &Preferences) -> Preferences {
        let mut p = current.clone();
        if let Some(v) = self.echo_cancellation {
            p.echo_cancellation = v;
        }
        if let Some(v) = self.noise_suppression {
            p.noise_suppression = v;
        }
        if let Some(v) = self.auto_gain_control {
            p.auto_gain_control = v;
        }
        if let Some(v) = self.start_muted {
            p.start_muted = v;
        }
        if let Some(v) = &self.input_device_id {
            p.input_device_id.clone_from(v);
        }
        if let Some(v) = &self.output_device_id {
            p.output_device_id.clone_from(v);
        }
        p
    }
}

/// How a call's media went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaPath {
    /// Peer to peer (host or server-reflexive candidates).
    Direct,
    /// Through a media node's TURN relay.
    Relayed,
}

impl MediaPath {
    /// `"direct"` or `"relayed"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaPath::Direct => "direct",
            MediaPath::Relayed => "relayed",
        }
    }

    /// The inverse of [`MediaPath::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "direct" => Some(MediaPath::Direct),
            "relayed" => Some(MediaPath::Relayed),
            _ => None,
        }
    }
}

/// One user's presence in one room: from join to leave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    /// Record id (a UUID).
    pub id: String,
    /// Who.
    pub user_id: String,
    /// Which room.
    pub room: String,
    /// The connection id the user had in the room.
    pub peer_id: String,
    /// Joined at, ms since the epoch.
    pub started_at: u64,
    /// Left at, ms since the epoch; `None` while in the room.
    pub ended_at: Option<u64>,
    /// How the media went, when known.
    pub media_path: Option<MediaPath>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferences_default_on_and_read_partial_records() {
        let p: Preferences = serde_json::from_str(r#"{"echoCancellation":false}"#).unwrap();
        assert!(!p.echo_cancellation);
        assert!(p.noise_suppression && p.auto_gain_control && !p.start_muted);
    }

    #[test]
    fn patch_keeps_absent_and_clears_null() {
        let base = Preferences {
            input_device_id: Some("mic".into()),
            output_device_id: Some("spk".into()),
            ..Preferences::default()
        };
        let patch: PreferencesPatch =
            serde_json::from_str(r#"{"noiseSuppression":false,"inputDeviceId":null}"#).unwrap();
        let p = patch.apply(&base);
        assert!(!p.noise_suppression);
        assert!(p.echo_cancellation);
        assert_eq!(p.input_device_id, None);
        assert_eq!(p.output_device_id.as_deref(), Some("spk"));
        assert!(serde_json::from_str::<PreferencesPatch>(r#"{"volume":3}"#).is_err());
    }

    #[test]
    fn call_record_json_is_camel_case() {
        let c = CallRecord {
            id: "c".into(),
            user_id: "u".into(),
            room: "r".into(),
            peer_id: "p".into(),
            started_at: 1,
            ended_at: None,
            media_path: Some(MediaPath::Relayed),
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["peerId"], "p");
        assert_eq!(v["mediaPath"], "relayed");
        assert!(v["endedAt"].is_null());
    }

    #[test]
    fn stored_user_debug_hides_the_hash() {
        let u = StoredUser {
            user: User {
                id: "1".into(),
                username: "Ada".into(),
                display_name: "Ada".into(),
            },
            password_hash: "$argon2id$secret".into(),
            created_at_ms: 0,
        };
        assert!(!format!("{u:?}").contains("argon2"));
    }
}
