//! In-memory connection store, for the local stack and tests.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use tincan_signaling::{Member, MessageRate, RateVerdict, ResumeProof, RoomView, Seat};

use crate::connection::{
    apply_detach, apply_resume, keep_refusal, ConnectionRecord, ConnectionStore, Departure,
    JoinOutcome, KeepOutcome, ResumeOutcome, Stranded,
};
use crate::error::StoreError;

#[derive(Debug, Default)]
struct State {
    connections: HashMap<String, ConnectionRecord>,
    /// User id -> its connections' ids, so a connect counts the user's
    /// sockets without a scan.
    by_user: HashMap<String, HashSet<String>>,
    /// Room id -> members, oldest first. A room with no members is removed.
    rooms: HashMap<String, Vec<Member>>,
    /// Peer id -> signals kept for it, with their expiry (seconds).
    kept: HashMap<String, (VecDeque<String>, u64)>,
}

impl State {
    fn forget_user_connection(&mut self, record: &ConnectionRecord) {
        if let Some(ids) = self.by_user.get_mut(&record.user_id) {
            ids.remove(&record.connection_id);
            if ids.is_empty() {
                self.by_user.remove(&record.user_id);
            }
        }
    }

    fn view(&self, room: &str) -> RoomView {
        RoomView {
            room: room.to_owned(),
            members: self.rooms.get(room).cloned().unwrap_or_default(),
        }
    }

    /// Appends `msg` to `peer_id`'s kept signals unless `max` are kept.
    fn keep(&mut self, peer_id: &str, msg: &str, max: usize, expires_at: u64) -> bool {
        let (queue, expiry) = self.kept.entry(peer_id.to_owned()).or_default();
        let bytes: usize = queue.iter().map(String::len).sum();
        if queue.len() >= max || bytes + msg.len() > crate::MAX_KEPT_BYTES {
            return false;
        }
        queue.push_back(msg.to_owned());
        *expiry = expires_at;
        true
    }

    /// Takes `peer_id` out of `room` if `pred` holds for it.
    fn take_out(
        &mut self,
        room: &str,
        peer_id: &str,
        pred: impl FnOnce(&Member) -> bool,
    ) -> Option<Departure> {
        let members = self.rooms.get_mut(room)?;
        let index = members.iter().position(|m| m.peer.peer_id == peer_id)?;
        if !pred(&members[index]) {
            return None;
        }
        let member = members.remove(index);
        if members.is_empty() {
            self.rooms.remove(room);
        }
        self.kept.remove(peer_id);
        Some(Departure {
            member,
            remaining: self.view(room),
        })
    }
}

/// Connections, rooms and kept signals in maps behind one lock.
///
/// Every method takes the lock once and never across an await, so each call
/// is atomic, as the trait requires. Rooms are indexed by id, so the cost of
/// a message does not grow with the number of other connections.
#[derive(Debug, Default)]
pub struct MemoryConnectionStore {
    state: Mutex<State>,
}

impl MemoryConnectionStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Changes participant `seat` if it is attached to connection `id`;
    /// the room after the change, or `None` if nothing was changed.
    fn update_attached(
        &self,
        id: &str,
        seat: &Seat,
        change: impl FnOnce(&mut Member),
    ) -> Option<RoomView> {
        self.with(|s| {
            let member = s
                .rooms
                .get_mut(&seat.room)?
                .iter_mut()
                .find(|m| m.peer.peer_id == seat.peer_id && m.is_attached_to(id))?;
            change(member);
            Some(s.view(&seat.room))
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // A poisoned lock only means another caller panicked mid-call; the
        // maps are always left whole by the methods below.
        let mut guard = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }
}

#[async_trait]
impl ConnectionStore for MemoryConnectionStore {
    async fn put(&self, record: &ConnectionRecord, max_per_user: usize) -> Result<(), StoreError> {
        self.with(|s| {
            let now_secs = record.connected_at_ms / 1000;
            let others = s.by_user.get(&record.user_id).map_or(0, |ids| {
                ids.iter()
                    .filter(|id| **id != record.connection_id)
                    .filter_map(|id| s.connections.get(id))
                    .filter(|r| r.is_live(now_secs))
                    .count()
            });
            if max_per_user > 0 && others >= max_per_user {
                return Err(StoreError::TooManyConnections {
                    user: record.user_id.clone(),
                    max: max_per_user,
                });
            }
            if let Some(old) = s
                .connections
                .insert(record.connection_id.clone(), record.clone())
            {
                s.forget_user_connection(&old);
            }
            s.by_user
                .entry(record.user_id.clone())
                .or_default()
                .insert(record.connection_id.clone());
            Ok(())
        })
    }

    async fn take_message(
        &self,
        id: &str,
        rate: MessageRate,
        now_ms: u64,
    ) -> Result<Option<(ConnectionRecord, RateVerdict)>, StoreError> {
        Ok(self.with(|s| {
            let record = s
                .connections
                .get_mut(id)
                .filter(|r| r.is_live(now_ms / 1000))?;
            let (verdict, next) = rate.take(record.rate, now_ms);
            record.rate = next;
            Some((record.clone(), verdict))
        }))
    }

    async fn get(&self, id: &str, now_secs: u64) -> Result<Option<ConnectionRecord>, StoreError> {
        Ok(self.with(|s| {
            s.connections
                .get(id)
                .filter(|r| r.is_live(now_secs))
                .cloned()
        }))
    }

    async fn remove(
        &self,
        id: &str,
        resume_until_ms: u64,
        _now_ms: u64,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        Ok(self.with(|s| {
            let record = s.connections.remove(id)?;
            s.forget_user_connection(&record);
            if let Some(seat) = &record.seat {
                if let Some(members) = s.rooms.get_mut(&seat.room) {
                    apply_detach(members, id, resume_until_ms);
                }
            }
            Some(record)
        }))
    }

    async fn connections_of(
        &self,
        user_id: &str,
        now_secs: u64,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        Ok(self.with(|s| {
            s.connections
                .values()
                .filter(|r| r.user_id == user_id && r.is_live(now_secs))
                .cloned()
                .collect()
        }))
    }

    async fn room(&self, room: &str) -> Result<RoomView, StoreError> {
        Ok(self.with(|s| s.view(room)))
    }

    async fn join(
        &self,
        id: &str,
        room: &str,
        member: &Member,
        room_max: usize,
        now_secs: u64,
    ) -> Result<JoinOutcome, StoreError> {
        Ok(self.with(|s| {
            let Some(record) = s.connections.get(id).filter(|r| r.is_live(now_secs)) else {
                return JoinOutcome::UnknownConnection;
            };
            let previous = record.seat.clone();
            let own = |m: &Member| m.is_attached_to(id);
            let others: Vec<Member> = s
                .rooms
                .get(room)
                .map(|members| members.iter().filter(|m| !own(m)).cloned().collect())
                .unwrap_or_default();
            if others.len() >= room_max {
                return JoinOutcome::RoomFull;
            }
            let departure = previous.and_then(|seat| s.take_out(&seat.room, &seat.peer_id, own));
            s.rooms
                .entry(room.to_owned())
                .or_default()
                .push(member.clone());
            if let Some(record) = s.connections.get_mut(id) {
                record.seat = Some(Seat {
                    peer_id: member.peer.peer_id.clone(),
                    room: room.to_owned(),
                });
            }
            JoinOutcome::Joined { others, departure }
        }))
    }

    async fn leave(
        &self,
        id: &str,
        seat: &Seat,
        _now_ms: u64,
    ) -> Result<Option<Departure>, StoreError> {
        Ok(self.with(|s| s.take_out(&seat.room, &seat.peer_id, |m| m.is_attached_to(id))))
    }

    async fn resume(
        &self,
        id: &str,
        user_id: &str,
        seat: &Seat,
        proof: &ResumeProof,
        new_hash: &str,
        now_ms: u64,
    ) -> Result<ResumeOutcome, StoreError> {
        Ok(self.with(|s| {
            let live = s
                .connections
                .get(id)
                .is_some_and(|r| r.is_live(now_ms / 1000) && r.user_id == user_id);
            let Some(members) = s.rooms.get_mut(&seat.room).filter(|_| live) else {
                return ResumeOutcome::Refused;
            };
            let Some(index) = apply_resume(members, id, user_id, seat, proof, new_hash, now_ms)
            else {
                return ResumeOutcome::Refused;
            };
            let member = members[index].clone();
            if let Some(record) = s.connections.get_mut(id) {
                record.seat = Some(seat.clone());
            }
            ResumeOutcome::Resumed {
                member,
                room: s.view(&seat.room),
            }
        }))
    }

    async fn set_muted(
        &self,
        id: &str,
        seat: &Seat,
        muted: bool,
        _now_ms: u64,
    ) -> Result<Option<RoomView>, StoreError> {
        Ok(self.update_attached(id, seat, |m| m.peer.muted = muted))
    }

    async fn set_on_sfu(
        &self,
        id: &str,
        seat: &Seat,
        _now_ms: u64,
    ) -> Result<Option<RoomView>, StoreError> {
        Ok(self.update_attached(id, seat, |m| m.sfu = true))
    }

    async fn expire(
        &self,
        seat: &Seat,
        resume_until_ms: u64,
        _now_ms: u64,
    ) -> Result<Option<Departure>, StoreError> {
        Ok(self.with(|s| {
            s.take_out(&seat.room, &seat.peer_id, |m| {
                m.is_detached_until(resume_until_ms)
            })
        }))
    }

    async fn keep_if_detached(
        &self,
        seat: &Seat,
        gone: Option<&str>,
        msg: &str,
        max: usize,
        expires_at: u64,
    ) -> Result<KeepOutcome, StoreError> {
        Ok(self.with(|s| {
            let members = s.rooms.get(&seat.room).map_or(&[][..], Vec::as_slice);
            if let Some(refusal) = keep_refusal(members, seat, gone) {
                return refusal;
            }
            if s.keep(&seat.peer_id, msg, max, expires_at) {
                KeepOutcome::Kept
            } else {
                KeepOutcome::Full
            }
        }))
    }

    async fn take_kept(&self, peer_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.with(|s| {
            s.kept
                .remove(peer_id)
                .map(|(queue, _)| queue.into())
                .unwrap_or_default()
        }))
    }

    async fn expired_members(&self, now_ms: u64) -> Result<Vec<(Seat, u64)>, StoreError> {
        Ok(self.with(|s| {
            // Kept signals nobody came back for go too.
            let now_secs = now_ms / 1000;
            s.kept.retain(|_, (_, expiry)| *expiry > now_secs);
            s.rooms
                .iter()
                .flat_map(|(room, members)| RoomView::expired_in(room, members, now_ms))
                .collect()
        }))
    }

    async fn stranded_members(&self, now_ms: u64) -> Result<Vec<Stranded>, StoreError> {
        Ok(self.with(|s| {
            let now_secs = now_ms / 1000;
            let mut stranded = Vec::new();
            for (room, members) in &s.rooms {
                for member in members {
                    let Some(id) = &member.connection_id else {
                        continue;
                    };
                    let record = s.connections.get(id);
                    if record.is_some_and(|r| r.is_live(now_secs)) {
                        continue;
                    }
                    stranded.push(Stranded {
                        seat: Seat {
                            peer_id: member.peer.peer_id.clone(),
                            room: room.clone(),
                        },
                        connection_id: id.clone(),
                        joined_at_ms: member.joined_at_ms,
                        record: record.cloned(),
                    });
                }
            }
            stranded
        }))
    }
}
