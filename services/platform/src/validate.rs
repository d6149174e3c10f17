//! Pure request validation, for the fuzz targets (`fuzz/`): a request decoded from
//! arbitrary bytes and put through the same `TryFrom` conversion a service applies before it
//! touches the database. Anything but `Ok` or a client error is a bug the fuzzer reports.

use crate::error::Error;

/// Decodes `body` as `Req` and converts it to `T` (the service's checked form).
pub fn decoded<Req, T>(body: &[u8]) -> Result<(), Error>
where
    Req: prost::Message + Default,
    T: TryFrom<Req, Error = Error>,
{
    let req = Req::decode(body).map_err(|e| Error::invalid("request", e.to_string()))?;
    T::try_from(req).map(|_| ())
}
