//! The payload codecs' cost per payload, in process: JSON against the old bincode format, and
//! the compression and encryption codecs on top.

use std::hint::black_box;
use std::time::Instant;

use reprise_codecs::{Aes256Gcm, Keyring, Zstd};
use reprise_history::{DataConverter, Payload};
use serde::{Deserialize, Serialize};

use crate::workloads::{Figure, figure};

/// A typical small payload: an order of a few lines.
#[derive(Clone, Serialize, Deserialize)]
struct Order {
    id: String,
    customer: String,
    lines: Vec<(String, u32, u64)>,
    express: bool,
}

fn small() -> Order {
    Order {
        id: "order-1042".into(),
        customer: "c-77a1f0".into(),
        lines: vec![
            ("tea".into(), 3, 450),
            ("cake".into(), 1, 1200),
            ("mug".into(), 2, 900),
        ],
        express: false,
    }
}

fn large() -> Order {
    let mut order = small();
    order.lines = (0..400)
        .map(|i| (format!("item-{i}"), i % 7, u64::from(i) * 13))
        .collect();
    order
}

/// Microseconds per encode + decode, the median of five timed passes.
fn per_round_trip(
    order: &Order,
    encode: impl Fn(&Order) -> Payload,
    decode: impl Fn(&Payload) -> Order,
) -> f64 {
    let iterations = 4_000;
    let mut passes: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iterations {
                let payload = encode(black_box(order));
                black_box(decode(&payload));
            }
            t.elapsed().as_secs_f64() * 1e6 / f64::from(iterations)
        })
        .collect();
    passes.sort_by(f64::total_cmp);
    passes[passes.len() / 2]
}

pub(crate) async fn codecs() -> anyhow::Result<Vec<Figure>> {
    let keys = Keyring::new("bench", [7; 32])?;
    let json = DataConverter::default();
    let encrypted = DataConverter::default().with_codec(Aes256Gcm::new(keys.clone()))?;
    let both = DataConverter::default()
        .with_codec(Zstd::default())?
        .with_codec(Aes256Gcm::new(keys))?;
    let mut figures = Vec::new();
    for (size, order) in [("small", small()), ("16 KiB", large())] {
        let bytes = json.to_payload(&order)?.len();
        anyhow::ensure!(bytes > 100, "payload of {bytes} bytes");
        let bincode = per_round_trip(
            &order,
            |o| Payload::encode_bincode_v1(o).unwrap_or_else(|_| Payload::unit()),
            |p| p.decode().unwrap_or_else(|_| small()),
        );
        let plain = per_round_trip(
            &order,
            |o| json.to_payload(o).unwrap_or_else(|_| Payload::unit()),
            |p| json.from_payload(p).unwrap_or_else(|_| small()),
        );
        let aes = per_round_trip(
            &order,
            |o| encrypted.to_payload(o).unwrap_or_else(|_| Payload::unit()),
            |p| encrypted.from_payload(p).unwrap_or_else(|_| small()),
        );
        let zstd_aes = per_round_trip(
            &order,
            |o| both.to_payload(o).unwrap_or_else(|_| Payload::unit()),
            |p| both.from_payload(p).unwrap_or_else(|_| small()),
        );
        let (n_bincode, n_json, n_aes, n_both) = match size {
            "small" => (
                "bincode, small",
                "JSON, small",
                "JSON + AES-GCM, small",
                "JSON + zstd + AES, small",
            ),
            _ => (
                "bincode, 16 KiB",
                "JSON, 16 KiB",
                "JSON + AES-GCM, 16 KiB",
                "JSON + zstd + AES, 16 KiB",
            ),
        };
        figures.push(figure(n_bincode, "µs/payload", bincode));
        figures.push(figure(n_json, "µs/payload", plain));
        figures.push(figure(n_aes, "µs/payload", aes));
        figures.push(figure(n_both, "µs/payload", zstd_aes));
    }
    Ok(figures)
}
