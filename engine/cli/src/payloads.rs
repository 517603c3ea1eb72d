//! The CLI's codecs: configured from the environment, as applications are encouraged to.

use reprise_codecs::{Aes256Gcm, KEYS_ENV, Keyring, Zstd};
use reprise_history::DataConverter;

/// The converter the CLI reads and writes payloads with. It reads zstd-compressed payloads
/// always, and never compresses what it writes (a process without zstd configured could not
/// read it). With keys in `REPRISE_PAYLOAD_KEYS` (`id:base64key[,...]`, current key first) it
/// encrypts what it writes and decrypts what it reads, like an application configured with
/// `Keyring::from_env(reprise_codecs::KEYS_ENV)`.
pub(crate) fn converter_from_env() -> anyhow::Result<DataConverter> {
    let mut converter =
        DataConverter::default().with_codec(Zstd::default().with_threshold(usize::MAX))?;
    if std::env::var_os(KEYS_ENV).is_some() {
        let keys = Keyring::from_env(KEYS_ENV)?;
        converter = converter.with_codec(Aes256Gcm::new(keys))?;
    }
    Ok(converter)
}
