//! The effects of the signaling core, applied: one small step per
//! [`Effect`], each a store write and the messages the core announces for
//! its outcome.

use std::collections::VecDeque;

use tincan_signaling::{
    CloseReason, Effect, JoinCommitted, MediaPath, Member, ProtocolError, ResumeGrant, ResumeProof,
    RoomId, RoomView, Seat, Sender,
};
use tincan_store::{JoinOutcome, PushError, ResumeOutcome};
use tracing::{debug, info, warn};

use super::{store_error, WsApi};

impl WsApi {
    /// Applies one effect of the core for `sender`, whose room (if any)
    /// was read as `view`.
    pub(super) async fn apply(
        &self,
        sender: &Sender,
        view: Option<&RoomView>,
        effect: Effect,
        now_ms: u64,
        gone: &mut VecDeque<String>,
    ) -> Result<(), ProtocolError> {
        match effect {
            Effect::Push(outgoing) => {
                let room = view.map(|v| v.room.as_str()).unwrap_or_default();
                self.emit(outgoing, room, now_ms, gone).await;
            }
            Effect::Close {
                connection_id,
                reason,
            } => self.close(&connection_id, reason).await,
            Effect::Join {
                member,
                room,
                room_max,
                grant,
            } => {
                self.join(sender, member, &room, room_max, grant, now_ms, gone)
                    .await?
            }
            Effect::Leave { seat, at_ms } => self.leave(sender, &seat, at_ms, now_ms, gone).await?,
            Effect::Resume {
                peer_id,
                room,
                proof,
                new_hash,
                grant,
            } => {
                let seat = Seat::new(peer_id, &room);
                self.resume(sender, &room, &seat, &proof, &new_hash, grant, now_ms, gone)
                    .await?
            }
            Effect::SetMuted { seat, muted } => {
                self.set_muted(sender, &seat, muted, now_ms, gone).await?
            }
            Effect::SfuOffer { seat, sdp } => {
                self.sfu_offer(sender, &seat, &sdp, now_ms, gone).await?
            }
            Effect::RecordMediaPath { seat, path } => {
                self.record_media_path(view, &seat, path).await
            }
        }
        Ok(())
    }

    /// [`Effect::Close`]: closes the socket; its `$disconnect` follows.
    async fn close(&self, connection_id: &str, reason: CloseReason) {
        warn!(%connection_id, ?reason, "closing the socket");
        match self.config.push.close(connection_id).await {
            Ok(()) | Err(PushError::Gone(_)) => {}
            Err(err) => warn!(%connection_id, error = %err, "close failed"),
        }
    }

    /// [`Effect::Join`]: the atomic join, call history, the SFU leave of
    /// the participant the sender left behind, and the announcements.
    #[allow(clippy::too_many_arguments)]
    async fn join(
        &self,
        sender: &Sender,
        member: Member,
        room: &RoomId,
        room_max: usize,
        grant: ResumeGrant,
        now_ms: u64,
        gone: &mut VecDeque<String>,
    ) -> Result<(), ProtocolError> {
        let now_secs = now_ms / 1000;
        let outcome = self
            .config
            .store
            .join(
                &sender.connection_id,
                room.as_str(),
                &member,
                room_max,
                now_secs,
            )
            .await
            .map_err(store_error)?;
        let JoinOutcome::Joined { others, departure } = outcome else {
            if outcome == JoinOutcome::RoomFull {
                let refusal = self.core.room_full(sender, room);
                self.deliver_all(vec![refusal], room.as_str(), now_ms, gone)
                    .await;
            }
            return Ok(());
        };
        info!(connection_id = %sender.connection_id, peer_id = %member.peer.peer_id, %room, "joined");
        self.log_joined(&member.peer, room.as_str(), member.joined_at_ms)
            .await;
        if let Some(departure) = &departure {
            self.log_left(&departure.member.peer, &departure.remaining.room, now_ms)
                .await;
            self.sfu_leave(departure, now_ms).await;
        }
        let ice = self
            .config
            .ice
            .ice_servers(&sender.user_id, room.as_str(), now_secs)
            .await;
        let messages = self.core.announce_join(
            sender,
            JoinCommitted {
                member: &member,
                room,
                others: &others,
                grant,
                departure: departure.as_ref().map(|d| (&d.member, &d.remaining)),
            },
            &ice,
        );
        // Every message of a join goes to the new room but the
        // `peer-left`s, which name no signal and so are never kept.
        self.deliver_all(messages, room.as_str(), now_ms, gone)
            .await;
        Ok(())
    }

    /// [`Effect::Leave`]: the atomic leave, then the departure.
    async fn leave(
        &self,
        sender: &Sender,
        seat: &Seat,
        at_ms: u64,
        now_ms: u64,
        gone: &mut VecDeque<String>,
    ) -> Result<(), ProtocolError> {
        let departure = self
            .config
            .store
            .leave(&sender.connection_id, seat, now_ms)
            .await
            .map_err(store_error)?;
        if let Some(departure) = departure {
            self.depart(&departure, at_ms, now_ms, gone).await;
        }
        Ok(())
    }

    /// [`Effect::Resume`]: the atomic resume, then `resumed` and the kept
    /// signals, or `resume-failed`.
    #[allow(clippy::too_many_arguments)]
    async fn resume(
        &self,
        sender: &Sender,
        room_id: &RoomId,
        seat: &Seat,
        proof: &ResumeProof,
        new_hash: &str,
        grant: ResumeGrant,
        now_ms: u64,
        gone: &mut VecDeque<String>,
    ) -> Result<(), ProtocolError> {
        let outcome = self
            .config
            .store
            .resume(
                &sender.connection_id,
                &sender.user_id,
                seat,
                proof,
                new_hash,
                now_ms,
            )
            .await
            .map_err(store_error)?;
        let ResumeOutcome::Resumed { member, room } = outcome else {
            debug!(connection_id = %sender.connection_id, "resume refused");
            let refusal = self.core.resume_refused(sender);
            self.deliver_all(vec![refusal], &seat.room, now_ms, gone)
                .await;
            return Ok(());
        };
        info!(connection_id = %sender.connection_id, peer_id = %seat.peer_id, "resumed");
        let ice = self
            .config
            .ice
            .ice_servers(&sender.user_id, &seat.room, now_ms / 1000)
            .await;
        let messages = self
            .core
            .announce_resume(sender, room_id, &member, &room, grant, &ice);
        self.deliver_all(messages, &seat.room, now_ms, gone).await;
        self.flush_kept(seat, &sender.connection_id, now_ms, gone)
            .await;
        Ok(())
    }

    /// [`Effect::SetMuted`]: the stored mute, the node's (for a participant
    /// on the SFU), then `peer-muted`.
    async fn set_muted(
        &self,
        sender: &Sender,
        seat: &Seat,
        muted: bool,
        now_ms: u64,
        gone: &mut VecDeque<String>,
    ) -> Result<(), ProtocolError> {
        let Some(room) = self
            .config
            .store
            .set_muted(&sender.connection_id, seat, muted, now_ms)
            .await
            .map_err(store_error)?
        else {
            return Ok(());
        };
        if self.core.mute_reaches_sfu(seat, &room) {
            let sfu = &self.config.sfu;
            if let Err(err) = sfu
                .mute(&seat.room, &seat.peer_id, muted, now_ms / 1000)
                .await
            {
                // The node still drops silence from the slots; the next
                // mute or a rejoin sets it right.
                warn!(room = %seat.room, error = %err, "SFU mute not applied");
            }
        }
        let messages = self.core.announce_mute(seat, muted, &room);
        self.deliver_all(messages, &seat.room, now_ms, gone).await;
        Ok(())
    }

    /// [`Effect::SfuOffer`]: marks the participant as on the SFU, then
    /// passes the offer to the room's node and sends back its answer.
    async fn sfu_offer(
        &self,
        sender: &Sender,
        seat: &Seat,
        sdp: &str,
        now_ms: u64,
        gone: &mut VecDeque<String>,
    ) -> Result<(), ProtocolError> {
        // Marked first: from now on the room stays on the SFU, and this
        // participant's departure reaches the node.
        let room = self
            .config
            .store
            .set_on_sfu(&sender.connection_id, seat, now_ms)
            .await
            .map_err(store_error)?;
        let member = self.core.sfu_offer_member(seat, room.as_ref())?;
        let answer = self
            .config
            .sfu
            .join(&seat.room, &member.peer, sdp, now_ms / 1000)
            .await
            .map_err(|err| {
                warn!(room = %seat.room, peer_id = %seat.peer_id, error = %err, "SFU join failed");
                err.to_protocol()
            })?;
        let answer = self.core.sfu_answer(sender, answer);
        self.deliver_all(vec![answer], &seat.room, now_ms, gone)
            .await;
        Ok(())
    }

    /// [`Effect::RecordMediaPath`]: notes the path in call history.
    async fn record_media_path(&self, view: Option<&RoomView>, seat: &Seat, path: MediaPath) {
        let member = view.and_then(|v| v.member(&seat.peer_id));
        let calls = member.and_then(|m| self.call_log_for(&m.peer));
        if let (Some(calls), Some(member)) = (calls, member) {
            if let Err(err) = calls.media_path(&member.peer, &seat.room, path).await {
                warn!(error = %err, "call history not written");
            }
        }
    }
}
