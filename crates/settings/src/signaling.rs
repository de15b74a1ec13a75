//! The signaling's limits, shared by `tincan-local` and the WebSocket
//! Lambdas.

use tincan_signaling::{Limits, MessageRate};

/// Most participants of a mesh room where an SFU exists; one more moves
/// the room to the SFU.
pub const DEFAULT_MESH_MAX: usize = 4;

/// Room sizes, message sizes and rates; the defaults are
/// [`Limits::default`]'s.
#[derive(Debug, Clone, clap::Args)]
pub struct SignalingSettings {
    /// Most participants in one room (default: the SFU's room size where
    /// there is an SFU, else 8, every room a mesh).
    #[arg(long, env = "TINCAN_ROOM_MAX")]
    pub room_max: Option<usize>,
    /// Most participants of a peer-to-peer room where there is an SFU; the
    /// next joiner moves the room to it.
    #[arg(long, env = "TINCAN_MESH_MAX", default_value_t = DEFAULT_MESH_MAX)]
    pub mesh_max: usize,
    /// Audio slots each SFU participant receives (the loudest speakers).
    #[arg(long, env = "TINCAN_SFU_SLOTS", default_value_t = Limits::default().sfu_slots)]
    pub sfu_slots: usize,
    /// Largest signaling message, bytes (`too-large` above).
    #[arg(long, env = "TINCAN_MAX_MESSAGE", default_value_t = Limits::default().max_message_bytes)]
    pub max_message: usize,
    /// Seconds a participant whose socket dropped stays in its room,
    /// resumable.
    #[arg(long, env = "TINCAN_RESUME_GRACE_SECS", default_value_t = Limits::default().resume_grace_secs)]
    pub resume_grace_secs: u64,
    /// Messages per second per socket (0: no limit).
    #[arg(long, env = "TINCAN_MSG_RATE", default_value_t = Limits::default().msg_rate.per_sec)]
    pub msg_rate: u32,
    /// Messages a socket may send in a burst.
    #[arg(long, env = "TINCAN_MSG_BURST", default_value_t = Limits::default().msg_rate.burst)]
    pub msg_burst: u32,
    /// Open sockets per user (0: no limit); one more is refused at
    /// `$connect` with 429 `rate-limited`.
    #[arg(long, env = "TINCAN_MAX_SOCKETS_PER_USER", default_value_t = Limits::default().max_sockets_per_user)]
    pub max_sockets_per_user: usize,
}

impl Default for SignalingSettings {
    fn default() -> Self {
        let d = Limits::default();
        Self {
            room_max: None,
            mesh_max: DEFAULT_MESH_MAX,
            sfu_slots: d.sfu_slots,
            max_message: d.max_message_bytes,
            resume_grace_secs: d.resume_grace_secs,
            msg_rate: d.msg_rate.per_sec,
            msg_burst: d.msg_rate.burst,
            max_sockets_per_user: d.max_sockets_per_user,
        }
    }
}

impl SignalingSettings {
    /// The limits: with an SFU whose rooms hold `sfu_room_max`, meshes up to
    /// `mesh_max` and rooms up to `room_max` (default `sfu_room_max`);
    /// without one (`None`), every room a mesh of up to `room_max`
    /// (default 8).
    pub fn limits(&self, sfu_room_max: Option<usize>) -> Limits {
        let defaults = Limits::default();
        let (mesh_max, room_max) = match sfu_room_max {
            Some(sfu_room_max) => (self.mesh_max.max(1), self.room_max.unwrap_or(sfu_room_max)),
            None => {
                let room_max = self.room_max.unwrap_or(defaults.room_max);
                (room_max, room_max)
            }
        };
        Limits {
            max_message_bytes: self.max_message,
            room_max,
            resume_grace_secs: self.resume_grace_secs,
            mesh_max,
            sfu_slots: self.sfu_slots.max(1),
            msg_rate: MessageRate {
                per_sec: self.msg_rate,
                burst: self.msg_burst,
            },
            max_sockets_per_user: self.max_sockets_per_user,
            ..defaults
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_are_meshes_without_an_sfu_and_grow_to_its_size_with_one() {
        let s = SignalingSettings::default();
        let alone = s.limits(None);
        assert_eq!((alone.mesh_max, alone.room_max), (8, 8));
        let with_sfu = s.limits(Some(100));
        assert_eq!((with_sfu.mesh_max, with_sfu.room_max), (4, 100));
        let capped = SignalingSettings {
            room_max: Some(20),
            ..s
        };
        assert_eq!(capped.limits(Some(100)).room_max, 20);
    }
}
