//! `provider collect` and `provider report`: the provider's side of federation (DESIGN §7)
//! — a receiver of batches (HTTP or an offline file) and the monthly report of what it holds.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::super::{CliError, Global, print_json, read_file, write_file};
use crate::federation::collector::{CollectError, Collector, report};
use crate::jws::JwsAlgorithm;
use crate::signing::SigningKey;
use seatkeep_device::armor::{self, Label};

/// `provider collect`.
#[derive(Debug, Args)]
pub struct CollectArgs {
    /// Receive batches over HTTP on this address (e.g. 127.0.0.1:8443; port 0 picks one).
    #[arg(long, conflicts_with = "import", required_unless_present = "import")]
    listen: Option<SocketAddr>,
    /// Take the batches of an offline federation file instead.
    #[arg(long, requires = "ack_out")]
    import: Option<PathBuf>,
    /// With --import: where to write the acks file for the site.
    #[arg(long, requires = "import")]
    ack_out: Option<PathBuf>,
    /// Where events are stored.
    #[arg(long)]
    data: PathBuf,
    /// The key files this provider issued (`*.seatkey`): the only source of server keys.
    /// Default: DATA/issued.
    #[arg(long)]
    issued: Option<PathBuf>,
    /// The provider private key that signs acks (one the sites trust).
    #[arg(long)]
    key: PathBuf,
    /// Its key id.
    #[arg(long)]
    kid: String,
    /// Signature algorithm (RSA keys: RS256 or PS256); default from the key type.
    #[arg(long)]
    algorithm: Option<JwsAlgorithm>,
}

/// `provider report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The collector's data folder.
    #[arg(long)]
    data: PathBuf,
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    format: ReportFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    Table,
    Csv,
    Json,
}

impl From<CollectError> for CliError {
    fn from(e: CollectError) -> Self {
        Self::Usage(e.to_string())
    }
}

pub fn collect(args: &CollectArgs, global: &Global) -> Result<(), CliError> {
    let key = SigningKey::from_pem(&read_file(&args.key)?, args.algorithm)?;
    let issued = args
        .issued
        .clone()
        .unwrap_or_else(|| args.data.join("issued"));
    let collector = Collector::open(&args.data, &issued, key, &args.kid)?;
    if let (Some(file), Some(ack_out)) = (&args.import, &args.ack_out) {
        return import(&collector, file, ack_out, global);
    }
    let Some(listen) = args.listen else {
        return Err(CliError::Usage(
            "give --listen ADDR or --import FILE".into(),
        ));
    };
    let known = collector.issued_count();
    crate::federation::collector::http::run(collector, listen, |bound| {
        // The one line a supervisor or test waits for.
        println!("collecting on http://{bound} for {known} issued licenses");
    })
    .map_err(crate::web::ServeError::Io)?;
    Ok(())
}

/// Every batch of the file, in order; the acks file holds the ack of each license's last
/// batch. A refused batch stops the import with its reason (what came before is kept).
fn import(
    collector: &Collector,
    file: &Path,
    ack_out: &Path,
    global: &Global,
) -> Result<(), CliError> {
    let tokens = armor::dearmor_lines(Label::Federation, &read_file(file)?)
        .map_err(|e| CliError::Usage(format!("{}: not a federation file: {e}", file.display())))?;
    let mut acks: Vec<(String, String)> = Vec::new();
    let mut summary = Vec::new();
    for (n, token) in tokens.iter().enumerate() {
        let receipt = collector
            .receive(token)
            .map_err(|e| CliError::Usage(format!("{}: batch {}: {e}", file.display(), n + 1)))?;
        if receipt.gap {
            return Err(CliError::Usage(format!(
                "{}: batch {}: refused: it starts past the {} events held for license '{}' \
                 (a gap); nothing stored",
                file.display(),
                n + 1,
                receipt.acked,
                receipt.lic
            )));
        }
        let key = format!("{}/{}", receipt.server, receipt.lic);
        acks.retain(|(k, _)| *k != key);
        acks.push((key, receipt.ack.clone()));
        summary.push(serde_json::json!({
            "server": receipt.server, "license": receipt.lic,
            "stored": receipt.stored, "acked": receipt.acked,
        }));
    }
    let text = armor::armor_lines(Label::FederationAcks, acks.iter().map(|(_, a)| a.as_str()));
    write_file(ack_out, text.as_bytes())?;
    if global.json {
        return print_json(&summary);
    }
    for s in &summary {
        println!(
            "{} {}: {} new events, acked {}",
            s["server"].as_str().unwrap_or_default(),
            s["license"].as_str().unwrap_or_default(),
            s["stored"],
            s["acked"],
        );
    }
    println!("acks written to {}", ack_out.display());
    Ok(())
}

pub fn report(args: &ReportArgs, global: &Global) -> Result<(), CliError> {
    let rows = report::monthly(&args.data)?;
    if global.json || args.format == ReportFormat::Json {
        return print_json(&rows);
    }
    match args.format {
        ReportFormat::Csv => print!("{}", report::csv(&rows)),
        _ => print!("{}", report::table(&rows)),
    }
    Ok(())
}
