//! Handshake codecs: the client's option requests, parsed from bytes with
//! no I/O (so they can be fuzzed), and the server's option replies.

use super::consts::*;

/// A client option, parsed from its code and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOption {
    ExportName(String),
    Abort,
    List,
    Info(InfoRequest),
    Go(InfoRequest),
    StructuredReply,
    ListMetaContext(MetaRequest),
    SetMetaContext(MetaRequest),
    /// An option this server does not implement (STARTTLS included).
    Unsupported(u32),
}

/// The payload of `NBD_OPT_INFO` and `NBD_OPT_GO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoRequest {
    pub name: String,
    /// `NBD_INFO_*` items the client asks for.
    pub items: Vec<u16>,
}

/// The payload of `NBD_OPT_LIST_META_CONTEXT` and `NBD_OPT_SET_META_CONTEXT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaRequest {
    pub export: String,
    pub queries: Vec<String>,
}

/// Why an option's payload was refused (sent as `NBD_REP_ERR_INVALID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid(pub &'static str);

/// The 16-byte option header: magic, option code, payload length.
pub const OPTION_HEADER_LEN: usize = 16;

/// Decode an option header; None when the magic is wrong.
pub fn decode_option_header(h: &[u8; OPTION_HEADER_LEN]) -> Option<(u32, u32)> {
    let mut r = Reader(h);
    if r.u64()? != OPT_MAGIC {
        return None;
    }
    Some((r.u32()?, r.u32()?))
}

/// Parse one option's payload. Pure: never panics, whatever the bytes.
pub fn parse_option(code: u32, data: &[u8]) -> Result<ClientOption, Invalid> {
    let mut r = Reader(data);
    let opt = match code {
        OPT_EXPORT_NAME => ClientOption::ExportName(string(data)?),
        // The spec asks servers to ignore any payload sent with ABORT.
        OPT_ABORT => ClientOption::Abort,
        OPT_LIST => {
            empty(data)?;
            ClientOption::List
        }
        OPT_STRUCTURED_REPLY => {
            empty(data)?;
            ClientOption::StructuredReply
        }
        OPT_INFO | OPT_GO => {
            let name = r.string()?;
            let n = r
                .u16()
                .ok_or(Invalid("truncated information request count"))?;
            let items = (0..n)
                .map(|_| r.u16().ok_or(Invalid("truncated information request list")))
                .collect::<Result<Vec<u16>, Invalid>>()?;
            r.end()?;
            let req = InfoRequest { name, items };
            if code == OPT_GO {
                ClientOption::Go(req)
            } else {
                ClientOption::Info(req)
            }
        }
        OPT_LIST_META_CONTEXT | OPT_SET_META_CONTEXT => {
            let export = r.string()?;
            let n = r.u32().ok_or(Invalid("truncated query count"))?;
            // Each query takes at least its 4-byte length, so `n` is
            // checked against the bytes present before anything is reserved.
            if n as usize > r.0.len() / 4 {
                return Err(Invalid("more queries than the option holds"));
            }
            let queries = (0..n)
                .map(|_| r.string())
                .collect::<Result<Vec<String>, Invalid>>()?;
            r.end()?;
            let req = MetaRequest { export, queries };
            if code == OPT_SET_META_CONTEXT {
                ClientOption::SetMetaContext(req)
            } else {
                ClientOption::ListMetaContext(req)
            }
        }
        other => ClientOption::Unsupported(other),
    };
    Ok(opt)
}

fn empty(data: &[u8]) -> Result<(), Invalid> {
    if data.is_empty() {
        Ok(())
    } else {
        Err(Invalid("this option takes no data"))
    }
}

/// A protocol string: UTF-8, no NUL, at most 4096 bytes.
fn string(bytes: &[u8]) -> Result<String, Invalid> {
    if bytes.len() > MAX_STRING {
        return Err(Invalid("string longer than 4096 bytes"));
    }
    if bytes.contains(&0) {
        return Err(Invalid("string contains NUL"));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| Invalid("string is not UTF-8"))
}

/// A cursor over big-endian fields; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2)?.try_into().ok().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_be_bytes)
    }

    /// A 32-bit length followed by that many bytes of string.
    fn string(&mut self) -> Result<String, Invalid> {
        let len = self.u32().ok_or(Invalid("truncated string length"))?;
        let bytes = usize::try_from(len)
            .ok()
            .and_then(|n| self.take(n))
            .ok_or(Invalid("string runs past the end of the option"))?;
        string(bytes)
    }

    fn end(&self) -> Result<(), Invalid> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Invalid("trailing bytes after the option's fields"))
        }
    }
}

/// One option reply: header and payload.
pub fn option_reply(option: u32, reply_type: u32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + data.len());
    out.extend_from_slice(&OPT_REPLY_MAGIC.to_be_bytes());
    out.extend_from_slice(&option.to_be_bytes());
    out.extend_from_slice(&reply_type.to_be_bytes());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// An error reply with a message for the user (truncated to the spec's limit).
pub fn error_reply(option: u32, reply_type: u32, message: &str) -> Vec<u8> {
    option_reply(option, reply_type, clip(message).as_bytes())
}

/// `NBD_REP_SERVER` naming one export.
pub fn server_reply(option: u32, name: &str) -> Vec<u8> {
    let name = clip(name).as_bytes();
    let mut data = Vec::with_capacity(4 + name.len());
    data.extend_from_slice(&(name.len() as u32).to_be_bytes());
    data.extend_from_slice(name);
    option_reply(option, REP_SERVER, &data)
}

/// `NBD_REP_INFO` with `NBD_INFO_EXPORT`: size and transmission flags.
pub fn info_export(option: u32, size: u64, flags: u16) -> Vec<u8> {
    let mut data = Vec::with_capacity(12);
    data.extend_from_slice(&INFO_EXPORT.to_be_bytes());
    data.extend_from_slice(&size.to_be_bytes());
    data.extend_from_slice(&flags.to_be_bytes());
    option_reply(option, REP_INFO, &data)
}

/// `NBD_REP_INFO` with `NBD_INFO_BLOCK_SIZE`.
pub fn info_block_size(option: u32, minimum: u32, preferred: u32, maximum: u32) -> Vec<u8> {
    let mut data = Vec::with_capacity(14);
    data.extend_from_slice(&INFO_BLOCK_SIZE.to_be_bytes());
    for v in [minimum, preferred, maximum] {
        data.extend_from_slice(&v.to_be_bytes());
    }
    option_reply(option, REP_INFO, &data)
}

/// `NBD_REP_INFO` carrying a string item (`NBD_INFO_NAME`, `NBD_INFO_DESCRIPTION`).
pub fn info_text(option: u32, item: u16, text: &str) -> Vec<u8> {
    let text = clip(text).as_bytes();
    let mut data = Vec::with_capacity(2 + text.len());
    data.extend_from_slice(&item.to_be_bytes());
    data.extend_from_slice(text);
    option_reply(option, REP_INFO, &data)
}

/// `NBD_REP_META_CONTEXT`.
pub fn meta_context(option: u32, id: u32, name: &str) -> Vec<u8> {
    let mut data = Vec::with_capacity(4 + name.len());
    data.extend_from_slice(&id.to_be_bytes());
    data.extend_from_slice(name.as_bytes());
    option_reply(option, REP_META_CONTEXT, &data)
}

/// The reply to `NBD_OPT_EXPORT_NAME`: size, flags and (unless the client
/// asked for none) 124 bytes of zeros.
pub fn export_name_reply(size: u64, flags: u16, no_zeroes: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + 124);
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    if !no_zeroes {
        out.resize(out.len() + 124, 0);
    }
    out
}

/// The server's greeting: magic, `IHAVEOPT`, handshake flags.
pub fn greeting() -> [u8; 18] {
    let mut out = [0u8; 18];
    out[..8].copy_from_slice(&INIT_MAGIC.to_be_bytes());
    out[8..16].copy_from_slice(&OPT_MAGIC.to_be_bytes());
    out[16..].copy_from_slice(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes());
    out
}

/// At most [`MAX_STRING`] bytes, cut on a character boundary.
fn clip(s: &str) -> &str {
    if s.len() <= MAX_STRING {
        return s;
    }
    let mut end = MAX_STRING;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go_payload(name: &[u8], items: &[u16]) -> Vec<u8> {
        let mut d = (name.len() as u32).to_be_bytes().to_vec();
        d.extend_from_slice(name);
        d.extend_from_slice(&(items.len() as u16).to_be_bytes());
        for i in items {
            d.extend_from_slice(&i.to_be_bytes());
        }
        d
    }

    #[test]
    fn go_parses_name_and_items() {
        let d = go_payload(b"vol@3", &[INFO_BLOCK_SIZE, INFO_NAME]);
        assert_eq!(
            parse_option(OPT_GO, &d),
            Ok(ClientOption::Go(InfoRequest {
                name: "vol@3".into(),
                items: vec![INFO_BLOCK_SIZE, INFO_NAME]
            }))
        );
    }

    #[test]
    fn go_refuses_lengths_that_do_not_add_up() {
        let mut d = go_payload(b"vol", &[1]);
        d.push(0);
        assert!(parse_option(OPT_GO, &d).is_err());
        let mut d = go_payload(b"vol", &[1]);
        d[3] = 200; // name length past the end
        assert!(parse_option(OPT_GO, &d).is_err());
        assert!(parse_option(OPT_INFO, &[0, 0]).is_err());
    }

    #[test]
    fn meta_query_count_is_checked_before_use() {
        let mut d = 0u32.to_be_bytes().to_vec();
        d.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            parse_option(OPT_SET_META_CONTEXT, &d),
            Err(Invalid("more queries than the option holds"))
        );
    }

    #[test]
    fn strings_must_be_utf8_without_nul() {
        assert!(parse_option(OPT_EXPORT_NAME, b"a\0b").is_err());
        assert!(parse_option(OPT_EXPORT_NAME, &[0xff, 0xfe]).is_err());
        assert_eq!(
            parse_option(OPT_EXPORT_NAME, b"web"),
            Ok(ClientOption::ExportName("web".into()))
        );
    }

    #[test]
    fn list_with_data_is_invalid_and_unknown_options_are_reported() {
        assert!(parse_option(OPT_LIST, b"x").is_err());
        assert_eq!(
            parse_option(OPT_STARTTLS, b""),
            Ok(ClientOption::Unsupported(OPT_STARTTLS))
        );
    }

    #[test]
    fn long_messages_are_clipped_on_a_char_boundary() {
        let msg = "é".repeat(3000);
        let r = error_reply(OPT_GO, REP_ERR_POLICY, &msg);
        let len = u32::from_be_bytes(r[16..20].try_into().unwrap()) as usize;
        assert!(len <= MAX_STRING);
        assert!(std::str::from_utf8(&r[20..]).is_ok());
    }
}
