import pytest

from voiceagent.dialogue.sentiment import FRUSTRATED_BELOW, caller_sentiment, is_frustrated


@pytest.mark.parametrize(
    "text",
    [
        "this is ridiculous, I've been waiting for ages",
        "I am really angry, this is the third time I've called",
        "That's useless, I'm sick of waiting.",
    ],
)
def test_angry_callers_are_frustrated(text):
    score = caller_sentiment(text)
    assert -1 <= score <= FRUSTRATED_BELOW
    assert is_frustrated(score)


@pytest.mark.parametrize(
    "text",
    [
        "brilliant, thanks for your help",
        "thank you so much, that's great",
        "my order number is four five six seven",
        "I want to cancel my order",  # "cancel" is a mildly negative word, not a frustrated caller
        "where is my parcel",
    ],
)
def test_calm_and_happy_callers_are_not(text):
    assert not is_frustrated(caller_sentiment(text))


def test_scores_are_ordered():
    happy = caller_sentiment("great, thank you, that's perfect")
    neutral = caller_sentiment("my postcode is M1 1AE")
    angry = caller_sentiment("this is terrible, I'm furious")
    assert -1 <= angry < neutral == 0 < happy <= 1
