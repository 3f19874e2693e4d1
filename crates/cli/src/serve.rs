//! `larder serve` and `larder up`.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
pub use larder_feature_server::run::{ServeArgs, serve};

#[derive(clap::Args, Debug, Clone)]
pub struct UpArgs {
    /// The example to run (a directory with manifests/ and data/).
    #[arg(long, default_value = "examples/driver-stats")]
    pub example: PathBuf,
    /// Where the registry and online store live.
    #[arg(long, default_value = ".larder")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Apply and materialize the example locally, then serve it.
pub async fn up(args: UpArgs) -> Result<()> {
    let manifests = args.example.join("manifests");
    if !manifests.is_dir() {
        return Err(anyhow!(
            "{} not found: run `larder up` from the repository root or pass --example DIR",
            manifests.display()
        ));
    }
    let docs = larder_model::load::load_paths(std::slice::from_ref(&manifests))?;
    let catalog = larder_model::validate::validate(docs)?;
    let project = catalog
        .projects()
        .first()
        .map(|p| p.to_string())
        .ok_or_else(|| anyhow!("the example declares no FeatureStore"))?;
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let data = std::path::absolute(&args.data_dir)?;
    let config = data.join("larder.yaml");
    std::fs::write(
        &config,
        format!(
            "# Written by `larder up`.\nproject: {project}\nregistry:\n  registry_type: sql\n  path: sqlite:///{}\n  cache_ttl_seconds: 5\nonline_store:\n  type: sqlite\n  path: {}\noffline_store:\n  type: file\nentity_key_serialization_version: 3\n",
            data.join("registry.db").display(),
            data.join("online.db").display()
        ),
    )?;
    let exe = std::env::current_exe()?;
    let run = |args: &[&str]| -> Result<()> {
        let status = std::process::Command::new(&exe)
            .arg("-c")
            .arg(&config)
            .args(args)
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(anyhow!("larder {} failed", args.join(" ")))
        }
    };
    let m = manifests.to_string_lossy().into_owned();
    run(&["apply", "-f", &m])?;
    run(&["materialize", "1970-01-01T00:00:00", "now"])?;
    let settings = larder_config::load(Some(&config), None, None)?;
    let registry = crate::registry_config(&settings)?.clone();
    let url = format!("http://{}:{}", args.serve.host, args.serve.port);
    println!(
        "\nReady. Try:\n\ncurl -s -X POST {url}/get-online-features -H 'content-type: application/json' \\\n  -d '{{\"features\": [\"driver_hourly_stats:conv_rate\", \"driver_hourly_stats:avg_daily_trips\"], \"entities\": {{\"driver_id\": [1001, 1002]}}}}'\n\nAPI docs: {url}/docs   metrics: {url}/metrics   (Ctrl-C stops)\n"
    );
    serve(&settings, &registry, &project, &args.serve).await
}
