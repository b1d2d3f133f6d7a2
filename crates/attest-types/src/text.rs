//! One table per enumeration: its variants and their text, from which `as_str`, `FromStr`,
//! `Display`, `ALL` and the serde names are all generated, so the forms cannot drift apart.

/// A text did not name any value of an enumeration (for example a stored value written by a
/// newer version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("unknown {0} value")]
pub struct UnknownValue(&'static str);

impl UnknownValue {
    /// A text that is not a `noun` (`"environment"`, `"delivery status"`, ...).
    pub const fn new(noun: &'static str) -> Self {
        Self(noun)
    }

    /// The enumeration the text was meant to name.
    pub const fn noun(self) -> &'static str {
        self.0
    }
}

/// `text_enum! { /// docs  Name, "noun" { /// docs  Variant = "text", ... } }`
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $noun:literal {
            $( $(#[$variant_meta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize,
        )]
        pub enum $name {
            $( $(#[$variant_meta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [Self; [$($text),+].len()] = [$(Self::$variant),+];

            #[doc = concat!("The text: ", $("`", $text, "` "),+)]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $text, )+
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::UnknownValue;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $( $text => Ok(Self::$variant), )+
                    _ => Err($crate::UnknownValue::new($noun)),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
