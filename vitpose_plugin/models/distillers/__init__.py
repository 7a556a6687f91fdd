from .knowledge_token import KnowledgeTokenDistiller, KnowledgeTokenLearner

__all__ = ['KnowledgeTokenDistiller', 'KnowledgeTokenLearner']
