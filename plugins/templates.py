"""The built-in ``neo2024`` prompt templates, verbatim from the paper."""

from lookups import PromptTemplate, hookimpl

_EXPLAINER_BODY = '''We are studying attention heads in a transformer architecture neural network. Each attention head looks for some particular thing in a short document.
This attention head in particular helps to predict that the next token is "{token}", but it is only active in some documents and not others. Look at the documents and explain what makes the attention head active, taking into consideration the inactive examples.
Examples where the attention head is active: """
{active_examples}
"""
Examples where the attention head is inactive: """
{inactive_examples}
"""
'''

_CLASSIFIER = '''{explanation}
Is the given example an active example? (Yes/No)

Example: """
{example}
"""
Answer: '''

NEO2024 = PromptTemplate(
    name="neo2024",
    description="Neo, Cohen & Barez 2024: final explainer and zero-shot classifier prompts",
    explainer=_EXPLAINER_BODY + "In two to three sentences, suggest when the attention head is active.",
    classifier=_CLASSIFIER,
)

_V1_PREFIX = "This attention head is active when the document"
NEO2024_V1 = PromptTemplate(
    name="neo2024-v1",
    description="The paper's older explainer variant, completing 'This attention head is active when the document'",
    explainer=_EXPLAINER_BODY + "Explanation: " + _V1_PREFIX,
    explanation_prefix=_V1_PREFIX,
    classifier=_CLASSIFIER,
)


@hookimpl
def register_templates(register) -> None:
    register(NEO2024)
    register(NEO2024_V1)
