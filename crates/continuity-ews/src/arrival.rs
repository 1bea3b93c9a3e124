//! Probe tokens on the wire, and the arrival registry the embedding gateway
//! feeds with outbound probes it received: core's
//! [`continuity_core::arrival`], re-exported here. One registry serves the
//! EWS and the Graph probes alike.

pub use continuity_core::arrival::{
    ArrivalRegistry, PROBE_HEADER, SUBJECT_PREFIX, carries_probe_token, parse_wire_id,
    probe_subject, probe_token_of, wire_id,
};
