//! Development secrets for `qi up`: an HS256 token secret and an access-context key,
//! generated on first start into the data folder (mode 0600) and reused after. Values in
//! `QI_JWT_SECRET` / `QI_ACCESS_KEY` take precedence.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::Context as _;
use base64::Engine as _;
use qi_platform::Config;

/// The file holding the development token secret.
pub const JWT_SECRET_FILE: &str = "jwt-secret";
/// The file holding the development access-context key.
pub const ACCESS_KEY_FILE: &str = "access-key";

/// Fills in the secrets `config` lacks from the data folder, creating them if absent.
pub fn ensure_dev_secrets(config: &mut Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    if config.jwt.hs256_secret.is_none()
        && config.jwt.jwks_file.is_none()
        && config.jwt.jwks_url.is_none()
    {
        config.jwt.hs256_secret = Some(read_or_create(&config.data_dir.join(JWT_SECRET_FILE))?);
    }
    if config.access_keys.current.is_none() {
        config.access_keys.current = Some(read_or_create(&config.data_dir.join(ACCESS_KEY_FILE))?);
    }
    Ok(())
}

/// Reads the development token secret of a data folder (for `qi token`).
pub fn read_jwt_secret(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(JWT_SECRET_FILE);
    let secret = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (run `qi up` once first, or set QI_JWT_SECRET)",
            path.display()
        )
    })?;
    Ok(secret.trim().to_owned())
}

/// A new random secret: 32 bytes, base64url.
pub fn random_secret() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn read_or_create(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let secret =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(file, "{secret}").with_context(|| format!("writing {}", path.display()))?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::defaults();
        config.data_dir = dir.path().to_owned();
        ensure_dev_secrets(&mut config).unwrap();
        let first = (
            config.jwt.hs256_secret.clone(),
            config.access_keys.current.clone(),
        );
        let mut again = Config::defaults();
        again.data_dir = dir.path().to_owned();
        ensure_dev_secrets(&mut again).unwrap();
        assert_eq!(first, (again.jwt.hs256_secret, again.access_keys.current));
        assert_eq!(read_jwt_secret(dir.path()).unwrap(), first.0.unwrap());
        assert_ne!(config.jwt.hs256_secret, config.access_keys.current);
    }
}
