//! DRF page-number pagination: `?page=` and `?page_size=`, and an envelope
//! with `count`, `next`, `previous` and `results`.

use crate::service::{Page, ServiceError};
use axum::extract::Query;
use axum::http::{header, HeaderMap, Uri};
use serde::Serialize;
use serde_json::{json, Value};

pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 200;

/// The query parameters, in order. A query that does not decode is a 400.
pub fn query_params(uri: &Uri) -> Result<Vec<(String, String)>, ServiceError> {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|Query(q)| q)
        .map_err(|_| ServiceError::BadRequest {
            code: "parse_error",
            detail: "Malformed query string.".into(),
        })
}

/// The last value given for `key`.
pub fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

pub struct PageRequest {
    pub page: usize,
    pub size: usize,
    /// Whether the client chose the size (then links keep it).
    explicit_size: bool,
}

impl PageRequest {
    /// As DRF: a page that is not a positive integer is an invalid page
    /// (404); a bad page size falls back to the default, a large one to the
    /// maximum.
    pub fn parse(params: &[(String, String)]) -> Result<PageRequest, ServiceError> {
        let page = match param(params, "page") {
            None => 1,
            Some(p) => match p.parse::<usize>() {
                Ok(n) if n >= 1 => n,
                _ => return Err(invalid_page()),
            },
        };
        let chosen = param(params, "page_size").and_then(|s| s.parse::<usize>().ok());
        let size = match chosen {
            Some(n) if n >= 1 => n.min(MAX_PAGE_SIZE),
            _ => DEFAULT_PAGE_SIZE,
        };
        Ok(PageRequest {
            page,
            size,
            explicit_size: chosen.is_some_and(|n| n >= 1),
        })
    }

    pub fn offset(&self) -> usize {
        (self.page - 1).saturating_mul(self.size)
    }

    /// The envelope for `page`. `base` is the list's absolute URL; `keep`
    /// are filters the links must repeat.
    pub fn envelope<T: Serialize>(
        &self,
        base: &str,
        keep: &[(&str, String)],
        page: Page<T>,
    ) -> Result<Value, ServiceError> {
        if self.page > 1 && self.offset() >= page.count {
            return Err(invalid_page());
        }
        let link = |n: usize| {
            let mut q = vec![format!("page={n}")];
            if self.explicit_size {
                q.push(format!("page_size={}", self.size));
            }
            q.extend(keep.iter().map(|(k, v)| format!("{k}={v}")));
            format!("{base}?{}", q.join("&"))
        };
        let more = self.offset() + page.items.len() < page.count;
        Ok(json!({
            "count": page.count,
            "next": more.then(|| link(self.page + 1)),
            "previous": (self.page > 1).then(|| link(self.page - 1)),
            "results": page.items,
        }))
    }
}

fn invalid_page() -> ServiceError {
    ServiceError::NotFound("Invalid page.".into())
}

/// `http://<host><path>` for links, with a Host header that could only be a
/// host name or address; anything else falls back to `localhost`.
pub fn absolute(headers: &HeaderMap, path: &str) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("http://{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn page_sizes_follow_drf() {
        let p = PageRequest::parse(&params(&[])).unwrap();
        assert_eq!((p.page, p.size), (1, DEFAULT_PAGE_SIZE));
        let p = PageRequest::parse(&params(&[("page_size", "1000")])).unwrap();
        assert_eq!(p.size, MAX_PAGE_SIZE);
        let p = PageRequest::parse(&params(&[("page_size", "x")])).unwrap();
        assert_eq!(p.size, DEFAULT_PAGE_SIZE);
        for bad in ["0", "-1", "x", ""] {
            assert!(
                PageRequest::parse(&params(&[("page", bad)])).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn links_and_ranges() {
        let p = PageRequest::parse(&params(&[("page", "2"), ("page_size", "2")])).unwrap();
        let page = Page {
            count: 5,
            items: vec![3, 4],
        };
        let v = p
            .envelope("http://h/x/", &[("server_id", "7".into())], page)
            .unwrap();
        assert_eq!(v["next"], "http://h/x/?page=3&page_size=2&server_id=7");
        assert_eq!(v["previous"], "http://h/x/?page=1&page_size=2&server_id=7");
        let p = PageRequest::parse(&params(&[("page", "4"), ("page_size", "2")])).unwrap();
        let empty: Page<u8> = Page {
            count: 5,
            items: vec![],
        };
        assert!(p.envelope("http://h/x/", &[], empty).is_err());
    }

    #[test]
    fn hostile_host_headers_are_not_echoed() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "evil.com/\"><x".parse().unwrap());
        assert_eq!(absolute(&h, "/a/"), "http://localhost/a/");
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(absolute(&h, "/a/"), "http://127.0.0.1:8080/a/");
    }
}
