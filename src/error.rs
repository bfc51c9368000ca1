//! `GraphError`: one variant per Graph error code, its status in one `match`, rendered once as
//! `{"error":{"code","message","innerError":{...}}}` by the request-context middleware (which
//! knows the request ids). Internal causes are logged where they happen, never sent.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// Every error graphsec puts on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphError {
    BadRequest(String),
    InvalidAuthenticationToken(String),
    AccessDenied(String),
    NotFound(String),
    MethodNotAllowed(String),
    Conflict(String),
    PreconditionFailed(String),
    PayloadTooLarge(String),
    UnsupportedMediaType(String),
    /// 414: the request target is longer than graphsec serves.
    UriTooLong(String),
    /// 431: the request headers are larger than graphsec serves.
    HeadersTooLarge(String),
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    /// A bug; the cause was logged where it happened.
    Internal,
    ServiceUnavailable {
        message: String,
        retry_after_secs: u64,
    },
    /// 408: the request did not complete within `--request-timeout`.
    RequestTimeout(String),
    /// A `$batch` sub-request not run because a request it depends on failed.
    FailedDependency(String),
    /// An error whose Graph code is not the status's usual one (the subscription surface's
    /// `InvalidRequest`, `ValidationError`, `ExtensionError`, as Graph answers them).
    Coded {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
}

/// The rendered parts of an error, carried in response extensions until the middleware writes
/// the body with the request ids.
#[derive(Debug, Clone)]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: String,
}

impl GraphError {
    pub fn status(&self) -> StatusCode {
        match self {
            GraphError::BadRequest(_) => StatusCode::BAD_REQUEST,
            GraphError::InvalidAuthenticationToken(_) => StatusCode::UNAUTHORIZED,
            GraphError::AccessDenied(_) => StatusCode::FORBIDDEN,
            GraphError::NotFound(_) => StatusCode::NOT_FOUND,
            GraphError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            GraphError::Conflict(_) => StatusCode::CONFLICT,
            GraphError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            GraphError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            GraphError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            GraphError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            GraphError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            GraphError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            GraphError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            GraphError::ServiceUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            GraphError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            GraphError::FailedDependency(_) => StatusCode::FAILED_DEPENDENCY,
            GraphError::Coded { status, .. } => *status,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            GraphError::BadRequest(_) => "BadRequest",
            GraphError::InvalidAuthenticationToken(_) => "InvalidAuthenticationToken",
            GraphError::AccessDenied(_) => "Authorization_RequestDenied",
            GraphError::NotFound(_) => "ResourceNotFound",
            GraphError::MethodNotAllowed(_) => "MethodNotAllowed",
            GraphError::Conflict(_) => "Conflict",
            GraphError::PreconditionFailed(_) => "PreconditionFailed",
            GraphError::PayloadTooLarge(_) => "RequestEntityTooLarge",
            GraphError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            GraphError::UriTooLong(_) => "RequestUriTooLong",
            GraphError::HeadersTooLarge(_) => "RequestHeaderFieldsTooLarge",
            GraphError::TooManyRequests { .. } => "TooManyRequests",
            GraphError::Internal => "InternalServerError",
            GraphError::ServiceUnavailable { .. } => "ServiceNotAvailable",
            GraphError::RequestTimeout(_) => "RequestTimeout",
            GraphError::FailedDependency(_) => "FailedDependency",
            GraphError::Coded { code, .. } => code,
        }
    }

    pub fn message(&self) -> String {
        match self {
            GraphError::BadRequest(m)
            | GraphError::InvalidAuthenticationToken(m)
            | GraphError::AccessDenied(m)
            | GraphError::NotFound(m)
            | GraphError::MethodNotAllowed(m)
            | GraphError::Conflict(m)
            | GraphError::PreconditionFailed(m)
            | GraphError::PayloadTooLarge(m)
            | GraphError::UnsupportedMediaType(m)
            | GraphError::FailedDependency(m)
            | GraphError::UriTooLong(m)
            | GraphError::RequestTimeout(m)
            | GraphError::HeadersTooLarge(m)
            | GraphError::TooManyRequests { message: m, .. }
            | GraphError::Coded { message: m, .. }
            | GraphError::ServiceUnavailable { message: m, .. } => m.clone(),
            GraphError::Internal => {
                "An internal server error occurred. The request id identifies it in the server log."
                    .into()
            }
        }
    }

    /// The error a bare status maps to, for responses produced outside graphsec's handlers
    /// (the HTTP stack's own rejections).
    pub fn from_status(status: StatusCode) -> GraphError {
        match status {
            StatusCode::BAD_REQUEST => GraphError::BadRequest("The request is malformed.".into()),
            StatusCode::NOT_FOUND => GraphError::NotFound("Resource not found.".into()),
            StatusCode::METHOD_NOT_ALLOWED => GraphError::MethodNotAllowed(
                "The HTTP method is not allowed on this resource.".into(),
            ),
            StatusCode::PAYLOAD_TOO_LARGE => GraphError::PayloadTooLarge(
                "The request body is larger than the server accepts.".into(),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                GraphError::UnsupportedMediaType("Send the body as application/json.".into())
            }
            StatusCode::URI_TOO_LONG => {
                GraphError::UriTooLong("The request URI is longer than the server accepts.".into())
            }
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => GraphError::HeadersTooLarge(
                "The request headers are larger than the server accepts.".into(),
            ),
            s if s.is_client_error() => {
                GraphError::BadRequest(format!("The request failed ({s})."))
            }
            _ => GraphError::Internal,
        }
    }
}

impl From<crate::auth::AuthError> for GraphError {
    fn from(e: crate::auth::AuthError) -> Self {
        match e {
            crate::auth::AuthError::Unauthenticated(m) => GraphError::InvalidAuthenticationToken(m),
            crate::auth::AuthError::Forbidden(m) => GraphError::AccessDenied(m),
        }
    }
}

impl std::fmt::Display for GraphError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let mut resp = self.status().into_response();
        let headers = resp.headers_mut();
        match &self {
            GraphError::InvalidAuthenticationToken(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(crate::auth::WWW_AUTHENTICATE),
                );
            }
            GraphError::TooManyRequests {
                retry_after_secs, ..
            }
            | GraphError::ServiceUnavailable {
                retry_after_secs, ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        resp.extensions_mut().insert(ErrorBody {
            code: self.code(),
            message: self.message(),
        });
        resp
    }
}
