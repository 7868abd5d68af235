//! A metered product's side, end to end: `cargo run -p seatkeep-device --example metered`.
//!
//! The first half plays the provider and the Seatkeep server (what they sign), so the example
//! runs without a server; a product has only the second half. It keeps its usage state in
//! files the way a product should: written atomically, with the save counter kept apart.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ed25519_dalek::{Signer as _, SigningKey};
use seatkeep_device::device_key::{Confirmation, DeviceKeyMeter, DeviceKeyProduct};
use seatkeep_device::keyfile::{self, Customer, KeyFileClaims, Policy, Product, ServerClaim};
use seatkeep_device::meter::wire::{
    PACKET_TYP, PacketClaims, PacketRequestClaims, PacketsAnswer, PoolFigures, TIME_TYP, TimeClaims,
};
use seatkeep_device::meter::{Clocks, Meter, MeterTerms, PacketSize, StateStore, Unit};
use seatkeep_device::{DEVICE_KEY_TYP, DeviceJwk, DeviceKeyClaims, KEY_FILE_TYP, LicenseModel};
use seatkeep_device::{ProviderKey, jws, verify_device_key};

/// The usage state in `state.json` (replaced by rename) and the counter in `state.anchor`.
struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    fn write_atomically(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write as _;
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, self.dir.join(name))
    }

    fn read(&self, name: &str) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.dir.join(name)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl StateStore for FileStore {
    type Error = std::io::Error;
    fn load(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        self.read("state.json")
    }
    fn save(&mut self, sealed: &[u8]) -> std::io::Result<()> {
        self.write_atomically("state.json", sealed)
    }
    fn load_anchor(&mut self) -> std::io::Result<u64> {
        let text = self.read("state.anchor")?.unwrap_or_default();
        Ok(String::from_utf8_lossy(&text).trim().parse().unwrap_or(0))
    }
    fn save_anchor(&mut self, writes: u64) -> std::io::Result<()> {
        self.write_atomically("state.anchor", writes.to_string().as_bytes())
    }
}

fn sign(
    key: &SigningKey,
    typ: &str,
    kid: &str,
    claims: &impl serde::Serialize,
) -> Result<String, serde_json::Error> {
    let header = jws::JwsHeader {
        alg: "EdDSA".into(),
        typ: Some(typ.into()),
        kid: Some(kid.into()),
    };
    let input = jws::signing_input(&header, &serde_json::to_vec(claims)?)?;
    Ok(jws::assemble(
        &input,
        &key.sign(input.as_bytes()).to_bytes(),
    ))
}

fn spki(key: &SigningKey) -> Vec<u8> {
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend_from_slice(key.verifying_key().as_bytes());
    der
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let clocks = || Clocks {
        wall: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
        mono_ms: started.elapsed().as_millis() as u64,
    };
    let random = || {
        let mut bytes = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
        bytes
    };
    let now = clocks().wall;

    // ---- What the provider and the Seatkeep server sign (not in a product). ----
    let provider = SigningKey::from_bytes(&random());
    let server = SigningKey::from_bytes(&random());
    let server_claim = ServerClaim::for_key(&spki(&server));
    let terms = MeterTerms {
        unit: Unit::DeviceHour,
        units: 1_000,
        packet: PacketSize::default(),
        packet_ttl: 30 * 86_400,
        overdraft_percent: 0,
    };
    let key_file_claims = KeyFileClaims {
        iss: "provider.example".into(),
        jti: "kf-1".into(),
        lic: "LIC-METER".into(),
        seq: 1,
        iat: now,
        nbf: None,
        exp: None,
        customer: Customer {
            id: "acme".into(),
            name: "Acme".into(),
        },
        product: Product {
            id: "scanpro".into(),
            name: "ScanPro".into(),
            edition: 1,
        },
        model: LicenseModel::Metered,
        seats: 10,
        admins: vec!["buyer@acme.example".into()],
        server: server_claim.clone(),
        policy: Policy::default(),
        federation: None,
        channel: None,
        meter: Some(terms.clone()),
    };
    let key_file = keyfile::armor(&sign(&provider, KEY_FILE_TYP, "p1", &key_file_claims)?);

    // ---- The product: its initialization key, made once and kept secret. ----
    let device_key = SigningKey::from_bytes(&random());
    let jkt = DeviceJwk::from_key(&device_key.verifying_key()).thumbprint();
    // It activates with `device_jwk` = DeviceJwk::from_key(..); the server answers a device key:
    let product = DeviceKeyProduct {
        id: "scanpro".into(),
        edition: 1,
    };
    let device_claims = DeviceKeyClaims {
        iss: server_claim.id.clone(),
        sub: "handheld-7".into(),
        name: "Ada".into(),
        lic: "LIC-METER".into(),
        product: product.clone(),
        seat: "st_demo".into(),
        r#gen: 1,
        iat: now,
        exp: None,
        model: "metered".into(),
        cnf: Some(Confirmation { jkt: jkt.clone() }),
        meter: Some(DeviceKeyMeter {
            unit: Unit::DeviceHour,
        }),
    };
    let signed_device_key = sign(&server, DEVICE_KEY_TYP, &server_claim.id, &device_claims)?;

    // At every start: verify the chain offline, open the meter, log in.
    let pinned = ProviderKey::from_spki_der(&spki(&provider))?;
    let verified = verify_device_key(
        &pinned,
        &key_file,
        &signed_device_key,
        "handheld-7",
        None,
        now,
    )?;
    let dir = std::env::temp_dir().join(format!("seatkeep-meter-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut meter = Meter::open(
        &verified,
        device_key.clone(),
        FileStore { dir: dir.clone() },
    )?;
    println!("login: {:?}", meter.login(clocks())?);

    // Locked: ask for a packet. The token goes to POST /api/v1/activations/st_demo/packets.
    let request = meter.request(24, true, random(), clocks())?;
    let asked: PacketRequestClaims =
        serde_json::from_slice(&jws::parse_compact(&request)?.payload)?;

    // ---- The server's answer (in a product: the HTTP response body). ----
    let packet = PacketClaims {
        iss: server_claim.id.clone(),
        sub: "handheld-7".into(),
        cnf: Confirmation { jkt },
        lic: "LIC-METER".into(),
        product,
        seat: "st_demo".into(),
        jti: "pk_1".into(),
        seq: 1,
        req: asked.jti.clone(),
        nonce: asked.nonce.clone(),
        amt: asked.amt,
        unit: Unit::DeviceHour,
        iat: clocks().wall,
        exp: clocks().wall + terms.packet_ttl,
    };
    let time = TimeClaims {
        iss: server_claim.id.clone(),
        sub: "handheld-7".into(),
        nonce: asked.nonce,
        iat: clocks().wall,
        exp: clocks().wall + 60,
    };
    let answer = PacketsAnswer {
        packets: vec![sign(&server, PACKET_TYP, &server_claim.id, &packet)?],
        time: sign(&server, TIME_TYP, &server_claim.id, &time)?,
        pool: PoolFigures {
            units: 1_000,
            issued: 24,
        },
    };

    // ---- The product again: apply, then tick while it runs. ----
    let report = meter.apply_answer(&answer, clocks())?;
    println!("applied: {:?}", report.packets);
    println!("after login: {:?}", meter.login(clocks())?);
    println!(
        "reported to the server next time: {:?}",
        meter.state().reported()
    );
    drop(meter);
    let reopened = Meter::open(&verified, device_key, FileStore { dir: dir.clone() })?;
    println!(
        "after a restart, balance {} minutes",
        reopened.state().balance()
    );
    remove(&dir);
    Ok(())
}

fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}
