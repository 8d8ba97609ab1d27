//! `voicemon alerts list|silence|unsilence|history`: the alert API of a running voicemon.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

#[derive(Args, Debug)]
pub struct AlertsArgs {
    /// Base URL of the voicemon to ask.
    #[arg(long, env = "VOICEMON_URL", default_value = "http://127.0.0.1:3001", global = true)]
    url: String,
    /// A read key (list, history) or an admin key (silences), when the server has keys.
    #[arg(long, env = "VOICEMON_API_KEY", hide_env_values = true, global = true, value_parser = crate::secret)]
    api_key: Option<SecretString>,
    #[command(subcommand)]
    command: AlertsCommand,
}

#[derive(Subcommand, Debug)]
enum AlertsCommand {
    /// Firing and pending alerts, and active silences.
    List,
    /// Mute matching alerts for a while.
    Silence {
        /// `label=value` or `label!=value`; repeat for several (all must match).
        #[arg(long = "match", required = true)]
        matchers: Vec<String>,
        /// How long, e.g. 30m, 2h.
        #[arg(long = "for", default_value = "1h")]
        duration: String,
        /// Why.
        #[arg(long)]
        comment: String,
        /// Who.
        #[arg(long, env = "USER")]
        author: String,
    },
    /// End a silence now.
    Unsilence {
        /// The silence's id, as `alerts list` shows it.
        id: String,
    },
    /// What fired, resolved, was notified or silenced.
    History {
        /// Start (RFC 3339 or unix seconds) [default: 24 hours ago].
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        rule: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
    },
}

pub async fn run(args: AlertsArgs) -> Result<()> {
    let client = Client {
        http: voicemon_server::outbound::client_builder().build()?,
        base: args.url.trim_end_matches('/').to_owned(),
        key: args.api_key,
    };
    match args.command {
        AlertsCommand::List => list(&client).await,
        AlertsCommand::Silence { matchers, duration, comment, author } => {
            let body =
                json!({"matchers": matchers, "duration": duration, "comment": comment, "author": author});
            let silence = client.send(client.http.post(client.url("/alerts/silences")).json(&body)).await?;
            println!("silence {} until {}", silence["id"].as_str().unwrap_or("?"), time(&silence["ends_ms"]));
            Ok(())
        }
        AlertsCommand::Unsilence { id } => {
            let silence =
                client.send(client.http.delete(client.url(&format!("/alerts/silences/{id}")))).await?;
            println!("silence {} ended", silence["id"].as_str().unwrap_or("?"));
            Ok(())
        }
        AlertsCommand::History { from, to, rule, tenant } => {
            let query: Vec<(&str, String)> =
                [("from", from), ("to", to), ("rule", rule), ("tenant_id", tenant)]
                    .into_iter()
                    .filter_map(|(name, value)| value.map(|v| (name, v)))
                    .collect();
            let history = client.send(client.http.get(client.url("/alerts/history")).query(&query)).await?;
            for entry in history["entries"].as_array().into_iter().flatten() {
                println!(
                    "{}  {:<20} {:<24} {}",
                    entry["at"].as_str().unwrap_or(""),
                    entry["kind"].as_str().unwrap_or(""),
                    entry["rule"].as_str().unwrap_or(""),
                    entry["detail"].as_str().unwrap_or("")
                );
            }
            Ok(())
        }
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<SecretString>,
}

impl Client {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value> {
        let request = match &self.key {
            Some(key) => request.bearer_auth(key.expose_secret()),
            None => request,
        };
        let response =
            request.send().await.with_context(|| format!("voicemon is unreachable at {}", self.base))?;
        let status = response.status();
        let body: Value = response.json().await.context("voicemon answered something that is not JSON")?;
        if !status.is_success() {
            bail!(
                "voicemon answered {status}: {}",
                body["error"]["message"].as_str().unwrap_or("no message")
            );
        }
        Ok(body)
    }
}

async fn list(client: &Client) -> Result<()> {
    let alerts = client.send(client.http.get(client.url("/alerts"))).await?;
    for (title, key) in [("FIRING", "firing"), ("PENDING", "pending")] {
        let list = alerts[key].as_array().cloned().unwrap_or_default();
        println!("{title} ({})", list.len());
        for alert in list {
            let muted = if alert["silenced"] == true {
                " [silenced]"
            } else if alert["inhibited"] == true {
                " [inhibited]"
            } else {
                ""
            };
            println!(
                "  {:<24} since {}  {}{muted}",
                alert["rule"].as_str().unwrap_or(""),
                alert["active_since"].as_str().unwrap_or(""),
                alert["annotations"]["summary"].as_str().unwrap_or("")
            );
        }
    }
    let silences = alerts["silences"].as_array().cloned().unwrap_or_default();
    println!("SILENCES ({})", silences.len());
    for silence in silences {
        let matchers: Vec<String> = silence["matchers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let op = if m["equal"] == false { "!=" } else { "=" };
                format!("{}{op}{}", m["name"].as_str().unwrap_or(""), m["value"].as_str().unwrap_or(""))
            })
            .collect();
        println!(
            "  {}  {}  until {}  by {}: {}",
            silence["id"].as_str().unwrap_or(""),
            matchers.join(","),
            time(&silence["ends_ms"]),
            silence["author"].as_str().unwrap_or(""),
            silence["comment"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

fn time(ms: &Value) -> String {
    ms.as_i64().map(voicemon_core::window::format_time).unwrap_or_default()
}
