//! Images and audio for the scripted server: the image parts a request carried (so a test asserts the
//! model received an image, and a [`crate::Script::rule`] answers depending on it), and the small fixed
//! WAV that `POST /v1/audio/speech` answers with.

use serde_json::Value;

/// The `image_url` URLs of every message of a chat request body, in order (`data:image/png;base64,…` or
/// `https://…`).
pub fn image_urls(body: &Value) -> Vec<String> {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .filter(|p| p["type"] == "image_url")
        .filter_map(|p| p["image_url"]["url"].as_str().map(str::to_owned))
        .collect()
}

/// The WAV every speech request is answered with: 0.01 s of silence, 8 kHz mono 16-bit PCM
/// (a 44-byte RIFF header and 160 bytes of samples).
pub fn speech_wav() -> Vec<u8> {
    let samples: u32 = 80;
    let data_len = samples * 2;
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&8000u32.to_le_bytes());
    wav.extend_from_slice(&16000u32.to_le_bytes()); // byte rate
    wav.extend_from_slice(&2u16.to_le_bytes()); // block align
    wav.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    wav.resize(44 + data_len as usize, 0);
    wav
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn image_parts_are_found_in_any_message() {
        let body = json!({"messages": [
            {"role": "user", "content": "plain"},
            {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}
        ]});
        assert_eq!(image_urls(&body), vec!["data:image/png;base64,AAAA".to_owned()]);
    }

    #[test]
    fn the_wav_is_well_formed() {
        let wav = speech_wav();
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(wav.len(), 44 + 160);
        assert_eq!(
            u32::from_le_bytes([wav[4], wav[5], wav[6], wav[7]]) as usize,
            wav.len() - 8
        );
    }
}
