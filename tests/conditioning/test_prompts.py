import torch


def test_prompt_tempo_reads_the_bpm_of_each_prompt():
    from stable_audio_kit.conditioning import prompt_tempo

    tempo = prompt_tempo(
        [
            "rock drums at 96 bpm",
            "a 4 bar groove, 72.5 BPM, loud",
            "house beat at 124 beats per minute",
            "124bpm techno, then 90 bpm",  # the first wins
            "a tone of 440 hertz",
            "bpm unknown",
        ]
    )
    assert tempo.dtype == torch.float32
    assert tempo[:4].tolist() == [96.0, 72.5, 124.0, 124.0]
    assert tempo[4:].isnan().all()


def test_prompt_key_reads_tonic_and_mode():
    from stable_audio_kit.conditioning import parse_key, prompt_key

    assert prompt_key(
        [
            "a calm piano melody in C major at 80 bpm",
            "Key: G# minor. Tempo: 107 bpm",
            "in the key of Bb min",
            "strings in E♭ Major, then A minor",  # the first wins
            "F#minor arpeggio",
            "a major chord on a piano",  # lower case "a" is a word, not a key
            "drums at 120 bpm",
        ]
    ) == [(0, "major"), (8, "minor"), (10, "minor"), (3, "major"), (6, "minor"), None, None]
    assert parse_key("Cb major") == (11, "major") and parse_key("B# minor") == (0, "minor")


def test_parse_prompt_reads_tempo_key_and_numbers_once():
    from stable_audio_kit.conditioning import ParsedPrompt, parse_prompt

    parsed = parse_prompt("a funky bass in B flat major at a tempo of 96, 2 bars")
    assert parsed.tempo == 96.0 and parsed.key == (10, "major")
    assert [value for _, _, value in parsed.numbers] == [96.0, 2.0]
    assert parse_prompt(parsed) is parsed  # a prompt read once is not read again
    assert parse_prompt("a major chord").key is None and isinstance(parsed, ParsedPrompt)
