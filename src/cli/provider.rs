//! The provider's side: `provider keygen` and `provider issue` (used by vendors, the
//! quickstart and the tests), and the federation collector and report ([`collect`]).

mod collect;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};

use super::{CliError, Global, KeyTypeArg, Run, create_dir, print_json, read_file, write_file};
use crate::identity::write_private;
use crate::jws::JwsAlgorithm;
use crate::keyfile::{self, KeyFileClaims, LicenseModel};
use crate::signing::{KeyType, SigningKey};

/// The provider's side: keys and key files.
#[derive(Debug, Args)]
pub struct Provider {
    #[command(subcommand)]
    command: ProviderCommand,
}

#[derive(Debug, Subcommand)]
enum ProviderCommand {
    /// Create a provider key pair: DIR/KID.pem and DIR/KID.pub.pem.
    Keygen {
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Key type.
        #[arg(long, value_enum, default_value_t = KeyTypeArg::Ed25519)]
        algorithm: KeyTypeArg,
        /// Key id.
        #[arg(long, default_value = "provider-1")]
        kid: String,
        /// Provider id, for the printed config block.
        #[arg(long, default_value = "provider.example")]
        provider: String,
    },
    /// Sign a key file.
    Issue(Box<IssueArgs>),
    /// Receive federation batches (HTTP or an offline file), store them, answer signed acks.
    Collect(Box<collect::CollectArgs>),
    /// Per license and month: registrations, returns, retirements, in use, overage, channels,
    /// units issued (metered) and units per channel.
    Report(collect::ReportArgs),
}

impl Run for Provider {
    fn run(self, global: &Global) -> Result<(), CliError> {
        match self.command {
            ProviderCommand::Keygen {
                out,
                algorithm,
                kid,
                provider,
            } => {
                let generated = keygen(&out, algorithm.into(), &kid)?;
                if global.json {
                    return print_json(&generated);
                }
                println!(
                    "provider key '{}' ({}) written to {}; public key {}",
                    generated.kid,
                    generated.algorithm,
                    generated.private_key.display(),
                    generated.public_key.display()
                );
                println!("\nTrust it on a Seatkeep server with:\n");
                print!(
                    "{}",
                    trusted_key_block(
                        &generated.kid,
                        &provider,
                        generated.algorithm,
                        &generated.public_key
                    )
                );
                Ok(())
            }
            ProviderCommand::Collect(args) => collect::collect(&args, global),
            ProviderCommand::Report(args) => collect::report(&args, global),
            ProviderCommand::Issue(args) => {
                let claims = issue(&args)?;
                if global.json {
                    return print_json(&claims);
                }
                println!(
                    "key file for license {} (seq {}, {} seats) written to {}",
                    claims.lic,
                    claims.seq,
                    claims.seats,
                    args.out.display()
                );
                Ok(())
            }
        }
    }
}

/// Flags of `seatkeep provider issue`: every claim of DESIGN §3, over an optional claims file.
/// Also built by the quickstart.
#[derive(Debug, Clone, Args)]
pub struct IssueArgs {
    /// Provider private key (PKCS#8 PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// Key id written in the header (must match the server's provider.trusted_keys).
    #[arg(long)]
    pub kid: String,
    /// Signature algorithm (RSA keys: RS256 or PS256); default from the key type.
    #[arg(long)]
    pub algorithm: Option<JwsAlgorithm>,
    /// Where to write the key file.
    #[arg(long)]
    pub out: PathBuf,
    /// Claims as a TOML or JSON file; flags below override its values.
    #[arg(long)]
    pub claims: Option<PathBuf>,
    /// The server's public key PEM (`server-key.pub.pem`): sets `server.id` and `server.key`.
    #[arg(long)]
    pub server_key: Option<PathBuf>,
    /// Server id, with --server-key-b64 instead of --server-key.
    #[arg(long, requires = "server_key_b64")]
    pub server_id: Option<String>,
    /// Base64 SPKI DER of the server key, with --server-id.
    #[arg(long, requires = "server_id")]
    pub server_key_b64: Option<String>,
    /// Provider id (`iss`).
    #[arg(long)]
    pub iss: Option<String>,
    /// File id (`jti`); random when absent.
    #[arg(long)]
    pub jti: Option<String>,
    /// License id (`lic`).
    #[arg(long)]
    pub lic: Option<String>,
    /// License version (`seq`), default 1.
    #[arg(long)]
    pub seq: Option<i64>,
    /// Issue time, unix seconds; default now.
    #[arg(long)]
    pub iat: Option<i64>,
    /// Start of term, unix seconds.
    #[arg(long, allow_hyphen_values = true)]
    pub nbf: Option<i64>,
    /// End of term, unix seconds.
    #[arg(long, allow_hyphen_values = true, conflicts_with = "expires_in")]
    pub exp: Option<i64>,
    /// End of term relative to now, e.g. "365d".
    #[arg(long)]
    pub expires_in: Option<humantime::Duration>,
    /// Customer id.
    #[arg(long)]
    pub customer_id: Option<String>,
    /// Customer name.
    #[arg(long)]
    pub customer_name: Option<String>,
    /// Product id.
    #[arg(long)]
    pub product_id: Option<String>,
    /// Product name.
    #[arg(long)]
    pub product_name: Option<String>,
    /// Product edition.
    #[arg(long)]
    pub edition: Option<i64>,
    /// License model.
    #[arg(long, value_enum)]
    pub model: Option<ModelArg>,
    /// Seats bought.
    #[arg(long, allow_hyphen_values = true)]
    pub seats: Option<i64>,
    /// Purchasing admin email (repeat for several).
    #[arg(long = "admin")]
    pub admins: Vec<String>,
    /// Name changes per seat per 365 days.
    #[arg(long)]
    pub reissue_limit: Option<i64>,
    /// Returns per seat per 365 days.
    #[arg(long)]
    pub return_limit: Option<i64>,
    /// Overage allowance in percent.
    #[arg(long)]
    pub overage_percent: Option<i64>,
    /// Federation URL.
    #[arg(long)]
    pub federation_url: Option<String>,
    /// Federation grace, seconds: unacknowledged events this old stop new activations.
    #[arg(long)]
    pub federation_grace: Option<i64>,
    /// Federation events carry raw device ids and user names.
    #[arg(long)]
    pub federation_user_data: bool,
    /// Channel: distributor id.
    #[arg(long)]
    pub distributor: Option<String>,
    /// Channel: affiliate id.
    #[arg(long)]
    pub affiliate: Option<String>,
    /// Channel: tool id.
    #[arg(long)]
    pub tool: Option<String>,
    /// Channel: partner id.
    #[arg(long)]
    pub partner: Option<String>,
}

/// `--model`: the [`LicenseModel`]s by their claim values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelArg {
    /// N devices; a seat is held until retired or returned.
    #[value(name = "node_locked")]
    NodeLocked,
    /// The first device to activate holds the license.
    #[value(name = "single_device")]
    SingleDevice,
    /// Not served yet by this version.
    #[value(name = "floating")]
    Floating,
    /// Usage sold in units, issued to devices in signed packets (DESIGN §10); the claims
    /// need a `meter` object (from `--claims FILE`).
    #[value(name = "metered")]
    Metered,
}

impl From<ModelArg> for LicenseModel {
    fn from(arg: ModelArg) -> Self {
        match arg {
            ModelArg::NodeLocked => Self::NodeLocked,
            ModelArg::SingleDevice => Self::SingleDevice,
            ModelArg::Floating => Self::Floating,
            ModelArg::Metered => Self::Metered,
        }
    }
}

/// What `provider keygen` wrote (its `--json` output).
#[derive(Debug, Clone, serde::Serialize)]
pub struct GeneratedProviderKey {
    pub kid: String,
    pub algorithm: JwsAlgorithm,
    pub private_key: PathBuf,
    pub public_key: PathBuf,
}

/// Writes `DIR/KID.pem` (0600) and `DIR/KID.pub.pem`.
pub fn keygen(out: &Path, key_type: KeyType, kid: &str) -> Result<GeneratedProviderKey, CliError> {
    if kid.is_empty()
        || !kid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(CliError::Usage(
            "--kid may only contain A-Z a-z 0-9 . _ -".into(),
        ));
    }
    create_dir(out)?;
    let private_key = out.join(format!("{kid}.pem"));
    if private_key.exists() {
        return Err(CliError::Usage(format!(
            "{} exists; choose another --kid or folder",
            private_key.display()
        )));
    }
    let pem_text = key_type.generate_pem()?;
    let key = SigningKey::from_pem(pem_text.as_bytes(), None)?;
    write_private(&private_key, pem_text.as_bytes())?;
    let public_key = out.join(format!("{kid}.pub.pem"));
    write_file(&public_key, key.public_pem().as_bytes())?;
    Ok(GeneratedProviderKey {
        kid: kid.to_owned(),
        algorithm: key.algorithm(),
        private_key,
        public_key,
    })
}

/// The `[[provider.trusted_keys]]` block a server needs for a provider key.
pub fn trusted_key_block(
    kid: &str,
    provider: &str,
    algorithm: JwsAlgorithm,
    public_key: &Path,
) -> String {
    format!(
        "[[provider.trusted_keys]]\nkid = {}\nprovider = {}\nalgorithm = \"{algorithm}\"\npublic_key_file = {}\n",
        toml_string(kid),
        toml_string(provider),
        toml_string(&public_key.to_string_lossy())
    )
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// Reads a claims file, TOML or JSON (by content).
fn read_claims_file(path: &Path) -> Result<Map<String, Value>, CliError> {
    let text = String::from_utf8(read_file(path)?)
        .map_err(|_| CliError::Usage(format!("{}: not UTF-8", path.display())))?;
    let value: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(_) => {
            let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
                CliError::Usage(format!(
                    "{}: neither JSON nor TOML: {}",
                    path.display(),
                    e.message()
                ))
            })?;
            serde_json::to_value(table)
                .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?
        }
    };
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(CliError::Usage(format!(
            "{}: claims must be an object",
            path.display()
        ))),
    }
}

fn set(map: &mut Map<String, Value>, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = map;
    for part in parents {
        let entry = current
            .entry((*part).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(next) = entry else { return };
        current = next;
    }
    current.insert((*last).to_owned(), value);
}

/// The server binding from the flags, checked for consistency.
fn server_binding(args: &IssueArgs) -> Result<Option<Value>, CliError> {
    let spki = match (&args.server_key, &args.server_key_b64) {
        (Some(path), _) => {
            let doc = pem::parse(read_file(path)?)
                .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
            if doc.tag() != "PUBLIC KEY" {
                return Err(CliError::Usage(format!(
                    "{}: expected the server's PUBLIC KEY PEM (server-key.pub.pem)",
                    path.display()
                )));
            }
            doc.contents().to_vec()
        }
        (None, Some(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| CliError::Usage("--server-key-b64 is not base64".into()))?,
        (None, None) => return Ok(None),
    };
    let claim = keyfile::server_claim(&spki);
    if let Some(id) = &args.server_id
        && *id != claim.id
    {
        return Err(CliError::Usage(format!(
            "--server-id {id} is not the id of that key ({})",
            claim.id
        )));
    }
    Ok(Some(json!({ "id": claim.id, "key": claim.key })))
}

/// Builds the claims from the file and the flags, with defaults for `jti`, `iat`, `seq`.
fn build_claims(args: &IssueArgs, now: i64) -> Result<KeyFileClaims, CliError> {
    let mut map = match &args.claims {
        Some(path) => read_claims_file(path)?,
        None => Map::new(),
    };
    let strings = [
        (&["iss"][..], &args.iss),
        (&["jti"], &args.jti),
        (&["lic"], &args.lic),
        (&["customer", "id"], &args.customer_id),
        (&["customer", "name"], &args.customer_name),
        (&["product", "id"], &args.product_id),
        (&["product", "name"], &args.product_name),
        (&["federation", "url"], &args.federation_url),
        (&["channel", "distributor"], &args.distributor),
        (&["channel", "affiliate"], &args.affiliate),
        (&["channel", "tool"], &args.tool),
        (&["channel", "partner"], &args.partner),
    ];
    for (path, value) in strings {
        if let Some(v) = value {
            set(&mut map, path, json!(v));
        }
    }
    let exp = args.exp.or_else(|| {
        args.expires_in
            .map(|d| now.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)))
    });
    let numbers = [
        (&["seq"][..], args.seq),
        (&["iat"], args.iat),
        (&["nbf"], args.nbf),
        (&["exp"], exp),
        (&["product", "edition"], args.edition),
        (&["seats"], args.seats),
        (&["policy", "reissue_limit"], args.reissue_limit),
        (&["policy", "return_limit"], args.return_limit),
        (&["policy", "overage_percent"], args.overage_percent),
        (&["federation", "grace"], args.federation_grace),
    ];
    for (path, value) in numbers {
        if let Some(v) = value {
            set(&mut map, path, json!(v));
        }
    }
    if let Some(model) = args.model {
        set(
            &mut map,
            &["model"],
            json!(LicenseModel::from(model).as_str()),
        );
    }
    if args.federation_user_data {
        set(&mut map, &["federation", "user_data"], json!(true));
    }
    if !args.admins.is_empty() {
        set(&mut map, &["admins"], json!(args.admins));
    }
    if let Some(server) = server_binding(args)? {
        set(&mut map, &["server"], server);
    }
    map.entry("jti").or_insert_with(|| {
        json!(format!(
            "kf_{}",
            crate::jws::b64url(&rand::random::<[u8; 12]>())
        ))
    });
    map.entry("iat").or_insert_with(|| json!(now));
    map.entry("seq").or_insert_with(|| json!(1));
    let payload = serde_json::to_vec(&Value::Object(map))
        .map_err(|e| CliError::Usage(format!("claims: {e}")))?;
    KeyFileClaims::from_json(&payload).map_err(|source| CliError::KeyFile {
        path: args.out.clone(),
        source: source.into(),
    })
}

/// Signs the claims into an armored key file at `--out`.
pub fn issue(args: &IssueArgs) -> Result<KeyFileClaims, CliError> {
    let claims = build_claims(args, crate::clock::default_source().now())?;
    let key = SigningKey::from_pem(&read_file(&args.key)?, args.algorithm)?;
    let text = keyfile::issue(&claims, &key, &args.kid).map_err(|source| CliError::KeyFile {
        path: args.out.clone(),
        source,
    })?;
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_dir(dir)?;
    }
    write_file(&args.out, text.as_bytes())?;
    Ok(claims)
}
