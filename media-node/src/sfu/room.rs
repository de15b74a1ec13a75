//! The SFU's rooms, apart from any connection: who is in which room, who is
//! muted, each publisher's level, which speaker each member hears in which
//! slot, and the `active-speakers` events owed. IO-free and free of DTLS:
//! the caller passes `now`, feeds levels and membership, and applies what
//! comes out (the slots to mirror into the streams, the events to send).
//!
//! The seeded harness in `room_harness.rs` drives synthetic members
//! through it on a virtual clock and checks its invariants after each step.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tincan_sfu_control::{ActiveSpeakers, SlotSpeaker};

use super::speakers::{assign, rank, Level};

/// A member: the SFU's participant key.
pub(crate) type Key = u64;

/// Longest gap between two `active-speakers` events to one member.
pub(crate) const SPEAKERS_EVERY: Duration =
    Duration::from_secs(tincan_sfu_control::ACTIVE_SPEAKERS_EVERY_SECS);

/// Why a member is not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    RoomFull,
    Draining,
}

struct Member {
    room: String,
    peer: String,
    muted: bool,
    /// Who each receive slot carries.
    slots: Vec<Option<Key>>,
    /// The `tincan` data channel is open: events can go.
    channel: bool,
    dirty: bool,
    speakers_sent: Option<Instant>,
}

#[derive(Default)]
struct Room {
    members: Vec<Key>,
    levels: HashMap<Key, Level>,
}

/// What a tick decided.
#[derive(Debug, Default)]
pub(crate) struct Tick {
    /// `active-speakers` events to send: to whom, and what.
    pub(crate) events: Vec<(Key, ActiveSpeakers)>,
    /// Slots carrying a speaker, over every member.
    pub(crate) streams: u64,
}

/// Every room of the node.
pub(crate) struct Rooms {
    room_max: usize,
    draining: bool,
    members: HashMap<Key, Member>,
    rooms: HashMap<String, Room>,
    by_name: HashMap<(String, String), Key>,
    /// Members whose slots changed since [`Rooms::take_changed`].
    changed: Vec<Key>,
}

impl Rooms {
    pub(crate) fn new(room_max: usize) -> Self {
        Self {
            room_max,
            draining: false,
            members: HashMap::new(),
            rooms: HashMap::new(),
            by_name: HashMap::new(),
            changed: Vec::new(),
        }
    }

    /// A draining node admits nobody.
    pub(crate) fn set_draining(&mut self, draining: bool) {
        self.draining = draining;
    }

    /// Whether `peer` may join `room`: the member it would replace (a
    /// rejoin), if any.
    pub(crate) fn admit(&self, room: &str, peer: &str) -> Result<Option<Key>, Refusal> {
        if self.draining {
            return Err(Refusal::Draining);
        }
        let existing = self.key_of(room, peer);
        let members = self.rooms.get(room).map_or(0, |r| r.members.len());
        if members - usize::from(existing.is_some()) >= self.room_max {
            return Err(Refusal::RoomFull);
        }
        Ok(existing)
    }

    /// Adds `key` to `room` as `peer` with `slots` receive slots, none
    /// filled yet. Call [`Rooms::admit`] first (and remove whom it names).
    pub(crate) fn insert(&mut self, key: Key, room: &str, peer: &str, muted: bool, slots: usize) {
        self.by_name.insert((room.to_owned(), peer.to_owned()), key);
        self.rooms
            .entry(room.to_owned())
            .or_default()
            .members
            .push(key);
        self.members.insert(
            key,
            Member {
                room: room.to_owned(),
                peer: peer.to_owned(),
                muted,
                slots: vec![None; slots],
                channel: false,
                dirty: true,
                speakers_sent: None,
            },
        );
    }

    /// Takes `key` out of its room, freeing its slots everywhere; its room
    /// and peer id, if it was in one.
    pub(crate) fn remove(&mut self, key: Key) -> Option<(String, String)> {
        self.unassign(key);
        let m = self.members.remove(&key)?;
        let name = (m.room, m.peer);
        if self.by_name.get(&name) == Some(&key) {
            self.by_name.remove(&name);
        }
        if let Some(room) = self.rooms.get_mut(&name.0) {
            room.members.retain(|k| *k != key);
            if room.members.is_empty() {
                self.rooms.remove(&name.0);
            }
        }
        self.changed.retain(|k| *k != key);
        Some(name)
    }

    /// The member `peer` of `room`.
    pub(crate) fn key_of(&self, room: &str, peer: &str) -> Option<Key> {
        // One lookup without building a key per call would need a borrowed
        // tuple; joins, mutes and leaves are rare enough.
        self.by_name
            .get(&(room.to_owned(), peer.to_owned()))
            .copied()
    }

    /// Mutes or unmutes `key`; a muted member leaves every slot at once.
    /// `key`'s room and peer id.
    pub(crate) fn name_of(&self, key: Key) -> Option<(&str, &str)> {
        self.members
            .get(&key)
            .map(|m| (m.room.as_str(), m.peer.as_str()))
    }

    pub(crate) fn set_muted(&mut self, key: Key, muted: bool) {
        if let Some(m) = self.members.get_mut(&key) {
            m.muted = muted;
        }
        if muted {
            self.unassign(key);
        }
    }

    /// `key` is muted; `None` for no such member.
    pub(crate) fn is_muted(&self, key: Key) -> Option<bool> {
        self.members.get(&key).map(|m| m.muted)
    }

    /// One packet's RFC 6464 level (-dBov) from `key`'s microphone.
    pub(crate) fn observe(&mut self, key: Key, minus_dbov: u8, now: Instant) {
        let Some(m) = self.members.get(&key) else {
            return;
        };
        if let Some(room) = self.rooms.get_mut(&m.room) {
            room.levels
                .entry(key)
                .or_default()
                .observe(minus_dbov & 0x7f, now);
        }
    }

    /// `key`'s data channel opened: it is owed an event.
    pub(crate) fn open_channel(&mut self, key: Key) {
        if let Some(m) = self.members.get_mut(&key) {
            m.channel = true;
            m.dirty = true;
        }
    }

    /// An event reached `key`'s data channel at `now`.
    pub(crate) fn speakers_sent(&mut self, key: Key, now: Instant) {
        if let Some(m) = self.members.get_mut(&key) {
            m.dirty = false;
            m.speakers_sent = Some(now);
        }
    }

    /// Who `key`'s slots carry.
    pub(crate) fn slots(&self, key: Key) -> &[Option<Key>] {
        self.members.get(&key).map_or(&[], |m| &m.slots)
    }

    /// The members of `key`'s room, `key` included.
    pub(crate) fn room_of(&self, key: Key) -> &[Key] {
        self.members
            .get(&key)
            .and_then(|m| self.rooms.get(&m.room))
            .map_or(&[], |r| &r.members)
    }

    /// Where a packet of `from` goes: each (member, slot) carrying it.
    pub(crate) fn routes(&self, from: Key) -> impl Iterator<Item = (Key, usize)> + '_ {
        self.room_of(from)
            .iter()
            .filter(move |k| **k != from)
            .filter_map(|k| Some((*k, self.members.get(k)?)))
            .flat_map(move |(k, m)| {
                m.slots
                    .iter()
                    .enumerate()
                    .filter(move |(_, s)| **s == Some(from))
                    .map(move |(i, _)| (k, i))
            })
    }

    /// Members whose slots changed since the last call (to mirror them
    /// into their streams).
    pub(crate) fn take_changed(&mut self) -> Vec<Key> {
        std::mem::take(&mut self.changed)
    }

    #[cfg(test)]
    pub(crate) fn member_count(&self) -> usize {
        self.members.len()
    }

    pub(crate) fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Re-evaluates every room's speakers; the events owed (to members
    /// whose slots changed, or who heard nothing for [`SPEAKERS_EVERY`]).
    pub(crate) fn tick(&mut self, now: Instant) -> Tick {
        let mut tick = Tick::default();
        for room in self.rooms.values() {
            let members = &self.members;
            let ranked = rank(
                &room.levels,
                |k| members.get(&k).is_some_and(|m| !m.muted),
                now,
            );
            for &key in &room.members {
                let Some(m) = self.members.get_mut(&key) else {
                    continue;
                };
                if assign(&mut m.slots, &ranked, key) {
                    m.dirty = true;
                    self.changed.push(key);
                }
                tick.streams += m.slots.iter().filter(|s| s.is_some()).count() as u64;
                let due = m
                    .speakers_sent
                    .is_none_or(|t| now.duration_since(t) >= SPEAKERS_EVERY);
                if !m.channel || !(m.dirty || due) {
                    continue;
                }
                let Some(m) = self.members.get(&key) else {
                    continue;
                };
                let event = ActiveSpeakers {
                    slots: m
                        .slots
                        .iter()
                        .enumerate()
                        .map(|(slot, s)| {
                            let k = (*s)?;
                            Some(SlotSpeaker {
                                slot,
                                peer_id: self.members.get(&k)?.peer.clone(),
                                level: room.levels.get(&k).map_or(-127, Level::reported),
                            })
                        })
                        .collect(),
                };
                tick.events.push((key, event));
            }
        }
        tick
    }

    /// Takes `key` out of every slot in its room (it left or muted).
    fn unassign(&mut self, key: Key) {
        let Some(room) = self
            .members
            .get(&key)
            .and_then(|m| self.rooms.get_mut(&m.room))
        else {
            return;
        };
        room.levels.remove(&key);
        for member in &room.members {
            let Some(m) = self.members.get_mut(member) else {
                continue;
            };
            for slot in &mut m.slots {
                if *slot == Some(key) {
                    *slot = None;
                    m.dirty = true;
                    if !self.changed.contains(member) {
                        self.changed.push(*member);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "room_harness.rs"]
mod harness;
