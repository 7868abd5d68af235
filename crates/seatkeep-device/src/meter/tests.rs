//! The meter against a test server that signs packets and time tokens (test-only signing).

use proptest::prelude::*;

use super::wire::{PACKET_TYP, PacketClaims, PacketsAnswer, PoolFigures, TIME_TYP, TimeClaims};
use super::*;
use crate::device_key::{Confirmation, DeviceKeyMeter, DeviceKeyProduct};
use crate::keyfile::LicenseModel;
use crate::verify::tests::chain::{
    DEVICE, KeyType, NOW, Server, TestKey, device_claims, issue, key_file_claims,
};
use crate::verify::{ProviderKey, VerifiedDevice, verify_device_key};
use crate::{DeviceJwk, jws};

const DAY: i64 = 86_400;

/// A provider, a server, a metered key file and one device's verified device key.
struct Site {
    server: Server,
    device: VerifiedDevice,
    key: ed25519_dalek::SigningKey,
    jkt: String,
    packet_ttl: i64,
}

fn site(unit: Unit) -> Site {
    let provider = TestKey::new(KeyType::Ed25519, "", None);
    let server = Server::new(KeyType::Ed25519);
    let mut claims = key_file_claims(&server);
    claims.model = LicenseModel::Metered;
    claims.meter = Some(MeterTerms {
        unit,
        units: 1_000,
        packet: PacketSize::default(),
        packet_ttl: 30 * DAY,
        overdraft_percent: 0,
    });
    let key_file = issue(&claims, &provider, "provider-2026");
    let key = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let jkt = DeviceJwk::from_key(&key.verifying_key()).thumbprint();
    let mut device = device_claims(&claims, server.id());
    device.cnf = Some(Confirmation { jkt: jkt.clone() });
    device.meter = Some(DeviceKeyMeter { unit });
    let device_key = server.sign_device_key(&device);
    let provider_key = ProviderKey::from_pem(provider.public_pem().as_bytes()).unwrap();
    let device =
        verify_device_key(&provider_key, &key_file, &device_key, DEVICE, None, NOW).unwrap();
    Site {
        server,
        device,
        key,
        jkt,
        packet_ttl: 30 * DAY,
    }
}

fn at(wall: i64, mono_s: u64) -> Clocks {
    Clocks {
        wall,
        mono_ms: mono_s * 1_000,
    }
}

impl Site {
    fn meter(&self, store: MemoryStore) -> Meter<MemoryStore> {
        Meter::open(&self.device, self.key.clone(), store).unwrap()
    }

    fn packet_claims(&self, seq: i64, amt: i64, req: &str, iat: i64) -> PacketClaims {
        PacketClaims {
            iss: self.server.id().to_owned(),
            sub: DEVICE.into(),
            cnf: Confirmation {
                jkt: self.jkt.clone(),
            },
            lic: self.device.license.clone(),
            product: DeviceKeyProduct {
                id: "wordsmith".into(),
                edition: 2,
            },
            seat: self.device.seat.clone(),
            jti: format!("pk-{seq}"),
            seq,
            req: req.to_owned(),
            nonce: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            amt,
            unit: self.device.device_key_claims.meter.unwrap().unit,
            iat,
            exp: iat + self.packet_ttl,
        }
    }

    fn sign_packet(&self, claims: &PacketClaims) -> String {
        self.server
            .key()
            .sign_jws(PACKET_TYP, self.server.id(), claims)
    }

    fn time(&self, nonce: &str, iat: i64) -> String {
        let claims = TimeClaims {
            iss: self.server.id().to_owned(),
            sub: DEVICE.into(),
            nonce: nonce.to_owned(),
            iat,
            exp: iat + 60,
        };
        self.server
            .key()
            .sign_jws(TIME_TYP, self.server.id(), &claims)
    }

    /// What the server does with a request: the next packet of `amt`, and the time.
    fn answer(&self, request: &str, seq: i64, amt: i64, now: i64) -> PacketsAnswer {
        let parsed = jws::parse_compact(request).unwrap();
        let claims: wire::PacketRequestClaims = serde_json::from_slice(&parsed.payload).unwrap();
        let packet = self.packet_claims(seq, amt, &claims.jti, now);
        PacketsAnswer {
            packets: vec![self.sign_packet(&packet)],
            time: self.time(&claims.nonce, now),
            pool: PoolFigures {
                units: 1_000,
                issued: amt,
            },
        }
    }
}

/// Asks for a packet and applies the answer.
fn top_up(site: &Site, meter: &mut Meter<MemoryStore>, seq: i64, amt: i64, now: Clocks) {
    let request = meter.request(amt, false, [seq as u8; 32], now).unwrap();
    let answer = site.answer(&request, seq, amt, now.wall);
    let report = meter.apply_answer(&answer, now).unwrap();
    assert_eq!(
        report.packets,
        vec![Ok(Applied::New {
            seq,
            ticks: amt * meter.state().unit.ticks_per_unit()
        })]
    );
}

fn balanced(state: &UsageState) -> bool {
    state.applied == state.used + state.balance() + state.lapsed
}

#[test]
fn ticks_down_to_locked_then_a_packet_opens_again() {
    let site = site(Unit::DeviceDay);
    let mut meter = site.meter(MemoryStore::default());
    assert_eq!(
        meter.login(at(NOW, 0)).unwrap(),
        Enforcement::Locked(LockReason::NoBalance)
    );
    top_up(&site, &mut meter, 1, 2, at(NOW, 1));
    assert_eq!(meter.login(at(NOW, 2)).unwrap(), Enforcement::Low);
    assert_eq!(meter.state().balance(), 1);
    // Same day: no second charge however often it ticks.
    for s in 3..10 {
        meter.tick(at(NOW + s as i64, s)).unwrap();
    }
    assert_eq!(meter.state().used, 1);
    // Next day charges the last unit; the day after, locked.
    assert_eq!(meter.tick(at(NOW + DAY, 20)).unwrap(), Enforcement::Low);
    assert_eq!(
        meter.tick(at(NOW + 2 * DAY, 30)).unwrap(),
        Enforcement::Locked(LockReason::NoBalance)
    );
    // Locked, a request still works, and its packet opens the product.
    top_up(&site, &mut meter, 2, 24, at(NOW + 2 * DAY, 31));
    assert_eq!(
        meter.tick(at(NOW + 2 * DAY, 32)).unwrap(),
        Enforcement::Active
    );
    assert_eq!((meter.state().used, meter.state().balance()), (3, 23));
    assert!(balanced(meter.state()));
}

#[test]
fn packets_are_refused_by_the_rules_in_order() {
    let site = site(Unit::DeviceHour);
    let mut meter = site.meter(MemoryStore::default());
    let now = at(NOW, 0);
    let request = meter.request(24, false, [1; 32], now).unwrap();
    let req = serde_json::from_slice::<wire::PacketRequestClaims>(
        &jws::parse_compact(&request).unwrap().payload,
    )
    .unwrap()
    .jti;
    let good = site.packet_claims(1, 24, &req, NOW);
    let mut cases: Vec<(String, &str)> = Vec::new();
    let other_server = Server::new(KeyType::Ed25519);
    cases.push((
        other_server
            .key()
            .sign_jws(PACKET_TYP, site.server.id(), &good),
        "invalid_packet",
    ));
    cases.push((
        site.server
            .key()
            .sign_jws(TIME_TYP, site.server.id(), &good),
        "invalid_packet",
    ));
    let mut other = good.clone();
    other.sub = "scanner-9999".into();
    cases.push((site.sign_packet(&other), "packet_wrong_device"));
    // A real packet of another device names its seat too: still `packet_wrong_device`.
    let mut other = good.clone();
    other.sub = "scanner-9999".into();
    other.seat = "st_another-seat".into();
    cases.push((site.sign_packet(&other), "packet_wrong_device"));
    let mut other = good.clone();
    other.cnf.jkt = "another-key".into();
    cases.push((site.sign_packet(&other), "packet_wrong_key"));
    let mut other = good.clone();
    other.seq = 2;
    cases.push((site.sign_packet(&other), "packet_out_of_order"));
    let mut other = good.clone();
    other.req = "never-asked-for-this".into();
    cases.push((site.sign_packet(&other), "packet_unsolicited"));
    for (token, code) in cases {
        let refused = meter.apply_packet(&token, now).unwrap().unwrap_err();
        assert_eq!(refused.code(), code, "{refused}");
        assert_eq!(meter.state().balance(), 0);
    }
    let token = site.sign_packet(&good);
    assert_eq!(
        meter.apply_packet(&token, now).unwrap(),
        Ok(Applied::New {
            seq: 1,
            ticks: 24 * 60
        })
    );
    // Applied twice: harmless.
    assert_eq!(
        meter.apply_packet(&token, now).unwrap(),
        Ok(Applied::Already { seq: 1 })
    );
    assert_eq!(meter.state().balance(), 24 * 60);
    // An expired one lapses: counted as applied, so the next applies in order.
    let request = meter.request(24, false, [2; 32], now).unwrap();
    let late = now.wall + site.packet_ttl + 1;
    let answer = site.answer(&request, 2, 24, NOW);
    let report = meter.apply_answer(&answer, at(late, 1)).unwrap();
    assert_eq!(
        report.packets[0].as_ref().unwrap_err().code(),
        "packet_expired"
    );
    assert_eq!(meter.state().last_seq, 2);
    assert!(balanced(meter.state()));
}

#[test]
fn clock_wound_back_23h_is_tolerated_25h_locks() {
    let site = site(Unit::DeviceDay);
    let mut meter = site.meter(MemoryStore::default());
    top_up(&site, &mut meter, 1, 10, at(NOW, 0));
    meter.login(at(NOW, 1)).unwrap();
    assert_eq!(meter.state().used, 1);
    // Back 23 h: still today by the high-water mark, no second charge, not locked.
    let back = meter.tick(at(NOW - 23 * 3_600, 2)).unwrap();
    assert_eq!(back, Enforcement::Active);
    assert_eq!(meter.state().used, 1);
    // Back 25 h: locked until the clock is right, and nothing is charged.
    assert_eq!(
        meter.tick(at(NOW - 25 * 3_600, 3)).unwrap(),
        Enforcement::Locked(LockReason::ClockWoundBack)
    );
    assert_eq!(meter.state().used, 1);
    assert_eq!(meter.tick(at(NOW + 60, 4)).unwrap(), Enforcement::Active);
}

#[test]
fn device_hour_charges_on_the_monotonic_clock() {
    let site = site(Unit::DeviceHour);
    let mut meter = site.meter(MemoryStore::default());
    top_up(&site, &mut meter, 1, 2, at(NOW, 0));
    meter.login(at(NOW, 0)).unwrap();
    assert_eq!(meter.state().used, 1);
    // The wall clock frozen, then wound back an hour: ten minutes still cost ten minutes.
    for minute in 1..=10u64 {
        let wall = if minute < 5 { NOW } else { NOW - 3_600 };
        meter.tick(at(wall, minute * 60)).unwrap();
    }
    assert_eq!(meter.state().used, 11);
    // A sparse tick pays the minutes in between too.
    meter.tick(at(NOW, 10 * 60 + 5 * 60)).unwrap();
    assert_eq!(meter.state().used, 16);
    assert!(balanced(meter.state()));
}

#[test]
fn restarting_every_59_seconds_still_charges() {
    let site = site(Unit::DeviceHour);
    let mut meter = site.meter(MemoryStore::default());
    top_up(&site, &mut meter, 1, 1, at(NOW, 0));
    let mut store = meter.into_store();
    for run in 0..10i64 {
        let mut meter = site.meter(store);
        meter.login(at(NOW + run * 59, 0)).unwrap();
        meter.tick(at(NOW + run * 59 + 58, 58)).unwrap();
        store = meter.into_store();
    }
    let meter = site.meter(store);
    assert_eq!(meter.state().used, 10);
}

#[test]
fn tampered_restored_or_deleted_state_locks() {
    let site = site(Unit::DeviceDay);
    let mut meter = site.meter(MemoryStore::default());
    top_up(&site, &mut meter, 1, 5, at(NOW, 0));
    let old = meter.into_store();
    let mut meter = site.meter(old.clone());
    meter.login(at(NOW, 1)).unwrap();
    let newer = meter.into_store();
    let locked = |store: MemoryStore| site.meter(store).status(at(NOW, 2));
    let tampered = Enforcement::Locked(LockReason::StateTampered);
    // An older copy of the file (valid HMAC) under the newer anchor.
    let restored = MemoryStore {
        sealed: old.sealed.clone(),
        anchor: newer.anchor,
    };
    assert_eq!(locked(restored), tampered);
    // One byte edited.
    let mut edited = newer.clone();
    let bytes = edited.sealed.as_mut().unwrap();
    let at_brace = bytes.iter().position(|&b| b == b'{').unwrap();
    bytes[at_brace + 3] ^= 1;
    assert_eq!(locked(edited), tampered);
    // Deleted.
    let deleted = MemoryStore {
        sealed: None,
        anchor: newer.anchor,
    };
    assert_eq!(locked(deleted), tampered);
    // Another device's state.
    let other = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let state = UsageState::new("scanner-9", "LIC-1", "seat-1", Unit::DeviceDay);
    let foreign = MemoryStore {
        sealed: Some(state::seal(&state, &other)),
        anchor: 0,
    };
    assert_eq!(locked(foreign), tampered);
    assert_eq!(locked(newer), Enforcement::Low);
}

#[test]
fn time_token_lowers_high_water_only_for_a_fresh_request() {
    let site = site(Unit::DeviceDay);
    let mut meter = site.meter(MemoryStore::default());
    // The clock jumped 100 days ahead, then was set right: wound back, locked.
    meter.tick(at(NOW + 100 * DAY, 0)).unwrap();
    assert_eq!(
        meter.status(at(NOW, 1)),
        Enforcement::Locked(LockReason::ClockWoundBack)
    );
    let request = meter.request(0, false, [9; 32], at(NOW, 10)).unwrap();
    let nonce = serde_json::from_slice::<wire::PacketRequestClaims>(
        &jws::parse_compact(&request).unwrap().payload,
    )
    .unwrap()
    .nonce;
    // A token for another nonce, or arriving a minute late, does not lower it.
    assert!(
        !meter
            .apply_time(&site.time("BBBBBBBBBBBBBBBBBBBBBB", NOW), at(NOW, 11))
            .unwrap()
    );
    assert!(
        !meter
            .apply_time(&site.time(&nonce, NOW), at(NOW, 71))
            .unwrap()
    );
    assert!(
        meter
            .apply_time(&site.time(&nonce, NOW), at(NOW, 30))
            .unwrap()
    );
    assert_eq!(meter.state().high_water, NOW);
    assert_eq!(
        meter.status(at(NOW, 31)),
        Enforcement::Locked(LockReason::NoBalance)
    );
}

#[derive(Debug, Clone)]
enum Step {
    Tick { advance_s: u32 },
    WallJump { secs: i32 },
    Request { amt: u8 },
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1u32..4_000).prop_map(|advance_s| Step::Tick { advance_s }),
        (-200_000i32..200_000).prop_map(|secs| Step::WallJump { secs }),
        (0u8..30).prop_map(|amt| Step::Request { amt }),
        Just(Step::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_runs_keep_the_books(steps in prop::collection::vec(step(), 1..60),
                                  hourly in any::<bool>()) {
        let site = site(if hourly { Unit::DeviceHour } else { Unit::DeviceDay });
        let mut meter = site.meter(MemoryStore::default());
        let (mut wall, mut mono, mut seq, mut used) = (NOW, 0u64, 0i64, 0i64);
        for (i, step) in steps.into_iter().enumerate() {
            match step {
                Step::Tick { advance_s } => {
                    wall += i64::from(advance_s);
                    mono += u64::from(advance_s) * 1_000;
                    meter.tick(Clocks { wall, mono_ms: mono }).unwrap();
                }
                Step::WallJump { secs } => wall += i64::from(secs),
                Step::Request { amt } => {
                    let now = Clocks { wall, mono_ms: mono };
                    let request = meter.request(i64::from(amt), false, [i as u8; 32], now).unwrap();
                    if amt > 0 {
                        seq += 1;
                        let answer = site.answer(&request, seq, i64::from(amt), wall);
                        meter.apply_answer(&answer, now).unwrap();
                    }
                }
                Step::Restart => {
                    let store = meter.into_store();
                    meter = site.meter(store);
                    mono = 0;
                }
            }
            let state = meter.state();
            prop_assert!(state.balance() >= 0);
            prop_assert!(state.used >= used, "used went down");
            prop_assert!(balanced(state));
            used = state.used;
        }
    }
}
