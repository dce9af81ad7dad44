//! Drives a `Shard` with arbitrary sequences of requests from four source addresses, whole games,
//! datagrams on its relay ports, garbage, and time moving forward; the checks made after every
//! operation are listed in `src/drive.rs`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rabid_punch_fuzz::{drive, Scenario};

fuzz_target!(|scenario: Scenario| {
    drive(&scenario, |_, _, _| {});
});
