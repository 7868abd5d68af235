//! `seatkeep quickstart`: a demo server in one folder — server key, demo provider key, a
//! 5-seat WordSmith key file bound to this server, an owner account — then `serve`.
//! Run again on the same folder it reuses all of it.

use std::path::{Path, PathBuf};

use clap::Args;

use super::provider::{IssueArgs, ModelArg, keygen, trusted_key_block};
use super::server::{CONFIG_FILE, KEY_FILE, init_logging, initial_config, serve};
use super::{CliError, Global, Run, write_file};
use crate::admins::{self, Role};
use crate::app::App;
use crate::config::Config;
use crate::identity::{ServerIdentity, public_key_path};
use crate::licenses::{self, ImportOutcome};
use crate::signing::KeyType;

/// Demo provider id (`iss`).
const DEMO_PROVIDER: &str = "demo-provider.example";
const DEMO_KID: &str = "demo-provider-1";
const DEMO_LICENSE: &str = "DEMO-WORDSMITH";
/// The metered demo license (issue 16).
const DEMO_METERED_LICENSE: &str = "DEMO-SCANPRO-METERED";
/// Name of the owner account.
const DEMO_ADMIN: &str = "admin";

/// Try it: init + demo provider + demo key file + admin user + serve.
#[derive(Debug, Args)]
pub struct Quickstart {
    /// Folder holding everything.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// Listen address (default 127.0.0.1:8080).
    #[arg(long)]
    listen: Option<String>,
}

impl Run for Quickstart {
    /// `--config` and `--json` do not apply: the quickstart writes its own config and prints
    /// a welcome text.
    fn run(self, _global: &Global) -> Result<(), CliError> {
        init_logging(&Config::from_sources(None, &[])?);
        quickstart(&self.data_dir, self.listen.as_deref())
    }
}

/// Paths the quickstart uses inside its folder.
struct Layout {
    dir: PathBuf,
    config: PathBuf,
    provider_dir: PathBuf,
    provider_key: PathBuf,
    key_file: PathBuf,
    /// The metered demo license (device hours).
    metered_key_file: PathBuf,
}

impl Layout {
    fn new(dir: &Path) -> Self {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let provider_dir = dir.join("provider");
        Self {
            config: dir.join(CONFIG_FILE),
            provider_key: provider_dir.join(format!("{DEMO_KID}.pem")),
            key_file: dir.join("wordsmith-demo.seatkey"),
            metered_key_file: dir.join("scanpro-metered-demo.seatkey"),
            provider_dir,
            dir,
        }
    }
}

/// Prepares what is missing, imports, prints how to use it, serves.
fn quickstart(dir: &Path, listen: Option<&str>) -> Result<(), CliError> {
    let layout = Layout::new(dir);
    super::create_dir(&layout.dir)?;
    let server_key = layout.dir.join(KEY_FILE);
    let fresh = !server_key.exists();
    if fresh {
        ServerIdentity::create(&server_key, KeyType::Ed25519, false)?;
    }
    if !layout.provider_key.exists() {
        keygen(&layout.provider_dir, KeyType::Ed25519, DEMO_KID)?;
    }
    if !layout.config.exists() {
        let block = trusted_key_block(
            DEMO_KID,
            DEMO_PROVIDER,
            crate::jws::JwsAlgorithm::EdDSA,
            Path::new(&format!("provider/{DEMO_KID}.pub.pem")),
        );
        write_file(&layout.config, initial_config(&block).as_bytes())?;
    }
    if !layout.key_file.exists() {
        issue_demo_key_file(&layout, &server_key, DemoLicense::WORDSMITH)?;
    }
    if !layout.metered_key_file.exists() {
        issue_demo_key_file(&layout, &server_key, DemoLicense::METERED)?;
    }
    let mut config = Config::load(Some(&layout.config))?;
    if let Some(listen) = listen {
        config.server.listen = listen.to_owned();
        config.listen_addr()?;
    }
    let app = App::load(config.clone())?;
    app.db.migrate()?;
    let import = |path: &Path| {
        let raw = super::read_file(path)?;
        licenses::import_key_file(&app, &raw, "quickstart").map_err(|source| CliError::Import {
            path: path.to_path_buf(),
            source,
        })
    };
    let report = import(&layout.key_file)?;
    import(&layout.metered_key_file)?;
    let password = if admins::count(&app.db)? == 0 {
        let password = admins::generate_password();
        admins::add(&app, DEMO_ADMIN, Role::Owner, &password, "quickstart")?;
        Some(password)
    } else {
        None
    };
    print_welcome(&layout, &config, &app, report.outcome, password.as_deref());
    drop(app);
    serve(config)
}

/// The demo licenses the quickstart issues.
struct DemoLicense {
    lic: &'static str,
    product: (&'static str, &'static str),
    model: ModelArg,
    seats: i64,
    /// `metered`: the `meter` claim, written as the claims file under the flags.
    meter: Option<&'static str>,
}

impl DemoLicense {
    const WORDSMITH: Self = Self {
        lic: DEMO_LICENSE,
        product: ("wordsmith", "WordSmith"),
        model: ModelArg::NodeLocked,
        seats: 5,
        meter: None,
    };
    /// 100 device hours for up to 3 handhelds, in packets of 1 to 24 hours.
    const METERED: Self = Self {
        lic: DEMO_METERED_LICENSE,
        product: ("scanpro", "ScanPro"),
        model: ModelArg::Metered,
        seats: 3,
        meter: Some(
            r#"{"meter": {"unit": "device_hour", "units": 100, "packet": {"default": 8, "min": 1, "max": 24}}}"#,
        ),
    };
}

fn issue_demo_key_file(
    layout: &Layout,
    server_key: &Path,
    demo: DemoLicense,
) -> Result<(), CliError> {
    let claims = match demo.meter {
        Some(meter) => {
            let path = layout.dir.join(format!("{}.claims.json", demo.lic));
            write_file(&path, meter.as_bytes())?;
            Some(path)
        }
        None => None,
    };
    let out = match demo.model {
        ModelArg::Metered => layout.metered_key_file.clone(),
        _ => layout.key_file.clone(),
    };
    let args = IssueArgs {
        key: layout.provider_key.clone(),
        kid: DEMO_KID.to_owned(),
        algorithm: None,
        out,
        claims,
        server_key: Some(public_key_path(server_key)),
        server_id: None,
        server_key_b64: None,
        iss: Some(DEMO_PROVIDER.to_owned()),
        jti: None,
        lic: Some(demo.lic.to_owned()),
        seq: Some(1),
        iat: None,
        nbf: None,
        exp: None,
        expires_in: Some(std::time::Duration::from_secs(365 * 24 * 3600).into()),
        customer_id: Some("demo-customer".to_owned()),
        customer_name: Some("Demo Corp".to_owned()),
        product_id: Some(demo.product.0.to_owned()),
        product_name: Some(demo.product.1.to_owned()),
        edition: Some(0),
        model: Some(demo.model),
        seats: Some(demo.seats),
        admins: vec!["purchasing@demo-corp.example".to_owned()],
        reissue_limit: None,
        return_limit: None,
        overage_percent: None,
        federation_url: None,
        federation_grace: None,
        federation_user_data: false,
        distributor: None,
        affiliate: None,
        tool: None,
        partner: None,
    };
    super::provider::issue(&args)?;
    Ok(())
}

fn print_welcome(
    layout: &Layout,
    config: &Config,
    app: &App,
    outcome: ImportOutcome,
    password: Option<&str>,
) {
    let url = config.public_url();
    let dir = layout.dir.display();
    println!();
    println!("Seatkeep quickstart — everything lives in {dir}");
    println!("  server id    {}", app.identity.id());
    println!("  server       {url}  (health: {url}/healthz, API: {url}/api/v1/openapi.json)");
    println!("  console      {url}/console");
    match outcome {
        ImportOutcome::Imported => println!(
            "  license      {DEMO_LICENSE}: WordSmith, 5 seats (imported {})",
            layout.key_file.display()
        ),
        _ => println!(
            "  license      {DEMO_LICENSE}: reused from the last run ({})",
            layout.key_file.display()
        ),
    }
    match password {
        Some(p) => println!(
            "  admin        sign in to {url}/console as '{DEMO_ADMIN}' with password (shown once): {p}"
        ),
        None => println!(
            "  admin        reused (reset with: seatkeep --config {} admin passwd {DEMO_ADMIN})",
            layout.config.display()
        ),
    }
    println!();
    println!("Activate a device (in another terminal):");
    println!(
        "  cargo run --release -- device activate --server {url} --key-file {} --device-id demo-device-1 --user \"Ada Lovelace\" --out {dir}/demo-device-1.json",
        layout.key_file.display()
    );
    println!("Verify its key offline with only the provider's public key:");
    println!(
        "  cargo run --release -- device verify --provider-key {}/{DEMO_KID}.pub.pem --device-key {dir}/demo-device-1.json --device-id demo-device-1",
        layout.provider_dir.display()
    );
    println!();
    println!(
        "Metered: {DEMO_METERED_LICENSE} sells ScanPro 100 device hours for 3 handhelds. Register one, ask for a packet, use it, see the balance:"
    );
    let metered = format!("{dir}/demo-handheld-1.json");
    let provider_pub = format!("{}/{DEMO_KID}.pub.pem", layout.provider_dir.display());
    println!(
        "  cargo run --release -- device activate --server {url} --key-file {} --device-id demo-handheld-1 --user \"Grace Hopper\" --out {metered}",
        layout.metered_key_file.display()
    );
    for step in ["request --units 8", "tick", "status"] {
        println!(
            "  cargo run --release -- device usage {step} --saved {metered} --provider-key {provider_pub}"
        );
    }
    println!(
        "  cargo run --release -- --config {} usage status --license {DEMO_METERED_LICENSE}",
        layout.config.display()
    );
    println!();
    println!("Stop with Ctrl-C; run the quickstart again to continue where you left off.");
    println!();
}
