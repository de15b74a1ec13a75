//! What subscribers report about the slots they receive: RTCP sender and
//! receiver reports carry, per SSRC, the fraction of packets lost on the
//! way from the node, which sizes the RED redundancy of that subscriber's
//! slots ([`super::red::Redundancy`]).
//!
//! webrtc-rs' interceptor chain keeps inbound RTCP for its own statistics
//! and stops it before the application; [`DeliverReports`] marks the
//! reports so they reach the SFU too. The parsing is IO-free.

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::sansio::Protocol;

/// The highest fraction lost (RTCP's 1/256 units) that one compound RTCP
/// packet reports for any of `ssrcs`; `None` when it reports on none.
pub(crate) fn worst_fraction_lost(
    packets: &[Box<dyn rtc::rtcp::Packet>],
    ssrcs: &[u32],
) -> Option<u8> {
    packets
        .iter()
        .flat_map(|packet| {
            let any = packet.as_any();
            let blocks: &[ReceptionReport] = if let Some(rr) = any.downcast_ref::<ReceiverReport>()
            {
                &rr.reports
            } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
                &sr.reports
            } else {
                &[]
            };
            blocks.iter()
        })
        .filter(|block| ssrcs.contains(&block.ssrc))
        .map(|block| block.fraction_lost)
        .max()
}

/// An interceptor that lets sender and receiver reports through to the
/// application (after the chain's own report handling has seen them).
#[derive(Default)]
pub(crate) struct DeliverReports {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for DeliverReports {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        let report = matches!(&msg.message.packet, Packet::Rtcp(packets)
            if packets.iter().any(|p| p.as_any().is::<ReceiverReport>() || p.as_any().is::<SenderReport>()));
        if report {
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for DeliverReports {
    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(ssrc: u32, fraction_lost: u8) -> ReceptionReport {
        ReceptionReport {
            ssrc,
            fraction_lost,
            ..ReceptionReport::default()
        }
    }

    #[test]
    fn the_worst_loss_on_our_ssrcs_counts() {
        let packets: Vec<Box<dyn rtc::rtcp::Packet>> = vec![
            Box::new(SenderReport {
                ssrc: 1,
                reports: vec![block(10, 5), block(99, 200)],
                ..SenderReport::default()
            }),
            Box::new(ReceiverReport {
                ssrc: 1,
                reports: vec![block(11, 40)],
                ..ReceiverReport::default()
            }),
        ];
        assert_eq!(worst_fraction_lost(&packets, &[10, 11, 12]), Some(40));
        assert_eq!(worst_fraction_lost(&packets, &[10]), Some(5));
        assert_eq!(worst_fraction_lost(&packets, &[12]), None);
        assert_eq!(worst_fraction_lost(&[], &[10]), None);
    }
}
